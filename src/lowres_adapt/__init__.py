"""lowres-adapt: adapt pretrained causal language models to low-resource, agglutinative languages.

Everything public is importable from the top level::

    >>> import lowres_adapt as la
    >>> la.get_language("ba").name
    'Bashkir'
    >>> la.LoRA(r=8).r
    8

The package is laid out by concept, one subpackage each (see docs/architecture.md); imports flow one way:

    cli -> study -> planning, recipes -> drift, evaluation, tokenization, modeling -> data, languages, errors

``la.data``, ``la.modeling``, ``la.tokenization``, ``la.evaluation``, ``la.drift``, ``la.recipes``,
``la.planning`` and ``la.study`` are the subpackages. Heavy modules (torch, transformers, peft) load on
first use of a name that needs them, so ``import lowres_adapt`` and ``lowres-adapt --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it. Names load lazily (PEP 562) on first attribute access.
_LAZY: dict[str, str] = {
    # languages
    "LanguageProfile": "languages",
    "BASHKIR": "languages",
    "RUSSIAN": "languages",
    "ENGLISH": "languages",
    "TATAR": "languages",
    "KAZAKH": "languages",
    "get_language": "languages",
    "register_language": "languages",
    "available_languages": "languages",
    # data
    "load_corpus": "data",
    "iter_corpus": "data",
    "split_documents": "data",
    "load_splits": "data",
    "has_splits": "data",
    "split_fingerprint": "data",
    "sample_corpus": "data",
    "sample_corpus_path": "data",
    "sample_prompts": "data",
    "sample_model_path": "data",
    "pack_documents": "data",
    # tiny models and tokenizers built in-process (demo, tests)
    "train_tokenizer": "modeling",
    "build_tiny_model": "modeling",
    "save_tiny_checkpoint": "modeling",
    # recipes
    "AdaptationRecipe": "recipes",
    "FullFineTuning": "recipes",
    "LoRA": "recipes",
    "QLoRA": "recipes",
    "TrainingRun": "recipes",
    "count_parameters_for": "recipes",
    "find_target_modules": "recipes",
    # memory (and time) planning, before any download
    "plan_memory": "planning",
    "MemoryPlan": "planning",
    # tokenizer diagnostics
    "diagnose_tokenizer": "tokenization",
    "compare_tokenizers": "tokenization",
    "TokenizerReport": "tokenization",
    "TokenizerComparison": "tokenization",
    "DiagnosticThresholds": "tokenization",
    "load_tokenizer": "tokenization",
    # evaluation
    "PerplexityEvaluator": "evaluation",
    "PerplexityResult": "evaluation",
    "compare_results": "evaluation",
    # drift
    "DriftDetector": "drift",
    "DriftAnalysis": "drift",
    "generate": "modeling",
    # study
    "Study": "study",
    "StudyResults": "study",
    # staged adaptation (vocabulary extension, stages, downstream tasks)
    "extend_vocabulary": "tokenization",
    "Stage": "recipes",
    "StagedRecipe": "recipes",
    "MultipleChoiceTask": "evaluation",
    "evaluate_multiple_choice": "evaluation",
    # errors
    "LowresAdaptError": "errors",
    "QuantizationUnavailableError": "errors",
    "TrainingDivergedError": "errors",
    "StudyConfigError": "errors",
    "BackendUnavailableError": "errors",
    "TokenizerConversionError": "errors",
}


# The concepts, one subpackage each; ``la.<name>`` imports it on first use.
SUBPACKAGES = ("data", "modeling", "recipes", "tokenization", "evaluation", "drift", "planning", "study")

# Module paths of releases before the layout by concept -> where they live now (``la.vocab`` still works).
_MOVED_MODULES: dict[str, str] = {
    "vocab": "tokenization.vocab",
    "stages": "recipes.staged",
    "memory_plan": "planning.plan",
    "tokenizer_diagnostics": "tokenization.diagnostics",
    "tokenizer_loading": "tokenization.loading",
    "downstream": "evaluation.downstream",
    "generation": "modeling.generation",
    "samples": "data.samples",
    "toy": "modeling.toy",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in SUBPACKAGES or name in ("languages", "errors", "cli"):
        value = importlib.import_module(f".{name}", __name__)
    elif name in _MOVED_MODULES:
        value = importlib.import_module(f".{_MOVED_MODULES[name]}", __name__)
    else:
        raise AttributeError(f"module 'lowres_adapt' has no attribute {name!r}")
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *SUBPACKAGES})


# For static type checkers and IDEs only; tests/test_layout.py holds it equal to _LAZY.
if TYPE_CHECKING:  # pragma: no cover
    from .data import (  # noqa: F401
        has_splits,
        iter_corpus,
        load_corpus,
        load_splits,
        pack_documents,
        sample_corpus,
        sample_corpus_path,
        sample_model_path,
        sample_prompts,
        split_documents,
        split_fingerprint,
    )
    from .drift import (  # noqa: F401
        DriftAnalysis,
        DriftDetector,
    )
    from .errors import (  # noqa: F401
        BackendUnavailableError,
        LowresAdaptError,
        QuantizationUnavailableError,
        StudyConfigError,
        TokenizerConversionError,
        TrainingDivergedError,
    )
    from .evaluation import (  # noqa: F401
        MultipleChoiceTask,
        PerplexityEvaluator,
        PerplexityResult,
        compare_results,
        evaluate_multiple_choice,
    )
    from .languages import (  # noqa: F401
        BASHKIR,
        ENGLISH,
        KAZAKH,
        RUSSIAN,
        TATAR,
        LanguageProfile,
        available_languages,
        get_language,
        register_language,
    )
    from .modeling import (  # noqa: F401
        build_tiny_model,
        generate,
        save_tiny_checkpoint,
        train_tokenizer,
    )
    from .planning import (  # noqa: F401
        MemoryPlan,
        plan_memory,
    )
    from .recipes import (  # noqa: F401
        AdaptationRecipe,
        FullFineTuning,
        LoRA,
        QLoRA,
        Stage,
        StagedRecipe,
        TrainingRun,
        count_parameters_for,
        find_target_modules,
    )
    from .study import (  # noqa: F401
        Study,
        StudyResults,
    )
    from .tokenization import (  # noqa: F401
        DiagnosticThresholds,
        TokenizerComparison,
        TokenizerReport,
        compare_tokenizers,
        diagnose_tokenizer,
        extend_vocabulary,
        load_tokenizer,
    )

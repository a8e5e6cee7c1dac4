"""lowres-adapt: adapt pretrained causal language models to low-resource, agglutinative languages.

Everything public is importable from the top level::

    >>> import lowres_adapt as la
    >>> la.get_language("ba").name
    'Bashkir'
    >>> la.LoRA(r=8).r
    8

Heavy modules (torch, transformers, peft) load on first use of a name that needs them, so
``import lowres_adapt`` and ``lowres-adapt --help`` stay fast.
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
    "sample_corpus": "samples",
    "sample_corpus_path": "samples",
    "sample_prompts": "samples",
    "sample_model_path": "samples",
    "pack_documents": "data",
    # tiny models and tokenizers built in-process (demo, tests)
    "train_tokenizer": "toy",
    "build_tiny_model": "toy",
    "save_tiny_checkpoint": "toy",
    # recipes
    "AdaptationRecipe": "recipes",
    "FullFineTuning": "recipes",
    "LoRA": "recipes",
    "QLoRA": "recipes",
    "TrainingRun": "recipes",
    "count_parameters_for": "recipes",
    "find_target_modules": "recipes",
    # memory (and time) planning, before any download
    "plan_memory": "memory_plan",
    "MemoryPlan": "memory_plan",
    # tokenizer diagnostics
    "diagnose_tokenizer": "tokenizer_diagnostics",
    "compare_tokenizers": "tokenizer_diagnostics",
    "TokenizerReport": "tokenizer_diagnostics",
    "TokenizerComparison": "tokenizer_diagnostics",
    "DiagnosticThresholds": "tokenizer_diagnostics",
    "load_tokenizer": "tokenizer_loading",
    # evaluation
    "PerplexityEvaluator": "evaluation",
    "PerplexityResult": "evaluation",
    "compare_results": "evaluation",
    # drift
    "DriftDetector": "drift",
    "DriftAnalysis": "drift",
    "generate": "generation",
    # study
    "Study": "study",
    "StudyResults": "study",
    # staged adaptation (vocabulary extension, stages, downstream tasks)
    "extend_vocabulary": "vocab",
    "Stage": "stages",
    "StagedRecipe": "stages",
    "MultipleChoiceTask": "downstream",
    "evaluate_multiple_choice": "downstream",
    # errors
    "LowresAdaptError": "errors",
    "QuantizationUnavailableError": "errors",
    "TrainingDivergedError": "errors",
    "StudyConfigError": "errors",
    "BackendUnavailableError": "errors",
    "TokenizerConversionError": "errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lowres_adapt' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for static type checkers and IDEs only
    from .data import (  # noqa: F401
        iter_corpus,
        load_corpus,
        pack_documents,
        split_documents,
        split_fingerprint,
    )
    from .errors import TokenizerConversionError  # noqa: F401
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
    from .memory_plan import MemoryPlan, plan_memory  # noqa: F401
    from .samples import sample_corpus, sample_corpus_path, sample_model_path, sample_prompts  # noqa: F401
    from .tokenizer_loading import load_tokenizer  # noqa: F401

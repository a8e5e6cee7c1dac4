"""What a study is made of, checked before anything runs: recipe shorthands ("lora-r16"), run labels,
corpus specs (paths, "hf:" specs, "sample:<code>", lists, split dicts), parallel files, and the options a
study passes to the trainer, the evaluator and ``generate``; and the data a study reads before it runs
(``load_study_data``)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._utils import check_file, did_you_mean, read_text_file
from ..data import iter_jsonl_records
from ..errors import StudyConfigError
from ..languages import LanguageProfile, get_language

__all__ = ["corpus_splits", "resolve_language", "resolve_recipe"]

_RECIPE_NAMES = ("full", "lora", "qlora", "dora", "rslora", "pissa")
_RECIPE_RE = re.compile(r"^(full|lora|qlora|dora|rslora|pissa)(?:-r(\d+))?$")
_RECIPE_EXAMPLES = ("full", "lora", "lora-r16", "qlora", "qlora-r16", "dora", "rslora", "pissa")
_TINY_RE = re.compile(r"^tiny:(gpt2|llama)$")


# --------------------------------------------------------------------------------------------- specs
def resolve_recipe(spec: Any):
    """Returns an ``AdaptationRecipe`` for ``spec``: a recipe (passed through), a dict (``from_dict``) or a
    shorthand string such as ``"full"``, ``"lora"``, ``"lora-r16"``, ``"qlora"``, ``"dora-r8"``.

    ``dora``, ``rslora`` and ``pissa`` are ``LoRA`` variants; ``-r<N>`` sets the rank (default: the
    recipe's own default).

    Example::

        >>> from lowres_adapt.study import resolve_recipe
        >>> resolve_recipe("lora-r16").r
        16
    """
    if callable(getattr(spec, "train", None)) and callable(getattr(spec, "to_dict", None)):
        return spec  # a recipe object (anything that trains and serialises like one)
    from .. import recipes

    if isinstance(spec, Mapping):
        d = dict(spec)
        if "recipe" not in d and "name" in d:  # {name: lora, r: 16} reads naturally in YAML
            d["recipe"] = d.pop("name")
        if isinstance(d.get("recipe"), str) and _RECIPE_RE.match(d["recipe"].lower()) and d["recipe"] not in (
                "full", "lora", "qlora"):  # a shorthand with options: {recipe: dora-r16, alpha: 32}
            base = resolve_recipe(d.pop("recipe")).to_dict()
            d = {**base, **d}
        try:
            return recipes.AdaptationRecipe.from_dict(d)
        except (TypeError, ValueError, KeyError) as e:
            raise StudyConfigError(f"bad recipe {dict(spec)!r}: {e}") from None
    if not isinstance(spec, str):
        raise StudyConfigError(f"a recipe must be a recipe object, a dict or a name like 'lora-r16', got {spec!r}")
    m = _RECIPE_RE.match(spec.strip().lower())
    if m is None:
        name = spec.strip().lower().split("-r")[0]
        raise StudyConfigError(
            f"unknown recipe {spec!r}{did_you_mean(name, _RECIPE_NAMES)}; known: {', '.join(_RECIPE_NAMES)}, "
            f"optionally with a rank suffix (e.g. {', '.join(_RECIPE_EXAMPLES)}), or a dict for "
            "AdaptationRecipe.from_dict"
        )
    name, rank = m.group(1), m.group(2)
    kwargs: dict[str, Any] = {} if rank is None else {"r": int(rank)}
    if name == "full":
        if rank is not None:
            raise StudyConfigError(f"recipe {spec!r}: full fine-tuning has no rank; use 'full'")
        return recipes.FullFineTuning()
    if name == "qlora":
        return recipes.QLoRA(**kwargs)
    if name == "lora":
        return recipes.LoRA(**kwargs)
    return recipes.LoRA(variant=name, **kwargs)


_LANGUAGE_FILES = (".yaml", ".yml", ".json")


def resolve_language(spec: Any) -> LanguageProfile:
    """Returns the ``LanguageProfile`` that ``spec`` names: a profile (passed through), a code or name of a
    built-in or registered one (``"ba"``), a dict of ``LanguageProfile`` fields, or a path to a YAML or
    JSON file of them (what ``--language`` and a study's ``language:`` take). Raises ``StudyConfigError``.

    Example::

        >>> from lowres_adapt.study import resolve_language
        >>> resolve_language("ba").name, resolve_language({"code": "ky", "name": "Kyrgyz"}).code
        ('Bashkir', 'ky')
    """
    try:
        if isinstance(spec, LanguageProfile):
            return spec
        if isinstance(spec, Mapping):
            return LanguageProfile.from_dict(dict(spec))
        if isinstance(spec, (str, os.PathLike)):
            text = os.fspath(spec)
            if text.lower().endswith(_LANGUAGE_FILES) or Path(text).is_file() or "/" in text or os.sep in text:
                return LanguageProfile.from_file(text)
            return get_language(text)
        raise ValueError(f"a language is a code ('ba'), a dict of LanguageProfile fields or a YAML/JSON file of "
                         f"them, got {type(spec).__name__}")
    except (ValueError, TypeError, OSError) as e:
        raise StudyConfigError(str(e)) from None


def drift_backend_that_runs(name: Any) -> str:
    """Returns the language-ID backend a study's ``drift_backend`` runs (``"auto"`` is ``"ngram"``);
    an unknown name raises ``StudyConfigError`` with a did-you-mean."""
    from ..drift import resolve_backend

    try:
        return resolve_backend(name)
    except ValueError as e:
        raise StudyConfigError(f"drift_backend: {e}") from None


def _recipe_dict(recipe: Any) -> dict:
    data = recipe if isinstance(recipe, dict) else recipe.to_dict()
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _recipe_label(recipe: Any) -> str:
    d = _recipe_dict(recipe)
    if str(d.get("recipe", "")).lower() == "staged" and isinstance(d.get("base"), dict):
        # a StagedRecipe: its base recipe's label plus the stage names, e.g. "lora-r8-c+i"
        return _slug(f"{_recipe_label(d['base'])}-{d.get('label') or 'staged'}")
    name = str(d.get("recipe") or d.get("name") or type(recipe).__name__).lower()
    name = {"fullfinetuning": "full", "full_finetuning": "full", "full-finetuning": "full"}.get(name, name)
    variant = d.get("variant")
    if variant:
        name = str(variant).lower() if name == "lora" else f"{name}-{variant}"
    rank = d.get("r")
    return _slug(f"{name}-r{rank}" if rank is not None else name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _model_label(model: str) -> str:
    if _TINY_RE.match(model):
        return _slug(model.replace(":", "-"))
    if model.startswith(_SAMPLE):  # "sample:mini-gpt2-ru": the model shipped with the package
        return _slug(model[len(_SAMPLE):])
    return _slug(Path(model.rstrip("/\\")).name or model)


def _hash(obj: Any, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:n]


def _texts_fingerprint(texts: Sequence[str] | None) -> str | None:
    if texts is None:
        return None
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------------------------- corpus and options
def corpus_splits(corpus: Any, *, text_field: str = "text", valid: float = 0.05, test: float = 0.05,
                  seed: int = 0) -> dict[str, list[str]]:
    """Returns ``{"train", "valid", "test"}`` document lists for a study's ``corpus`` argument.

    ``corpus``: a folder holding one file per split (used as it is), another path, an ``"hf:"`` spec
    or ``"sample:<code>"`` (the shipped sample corpus; all three loaded and split with ``split_documents``), a list of documents (split), a splits dict (used as it
    is), or ``{"source": ..., "text_field": ..., "stream": True}`` (``stream``: the train split is read as
    a stream, never held in memory; see ``data.split_source``). A corpus too small for the splits raises
    ``StudyConfigError``.

    Example::

        >>> from lowres_adapt.study import corpus_splits
        >>> s = corpus_splits([f"doc {i}" for i in range(20)], valid=0.1, test=0.1)
        >>> [len(s[k]) for k in ("train", "valid", "test")]
        [16, 2, 2]
    """
    from .. import data as data_mod

    stream = False
    if isinstance(corpus, Mapping) and "source" in corpus:
        corpus = dict(corpus)
        source, text_field = corpus.pop("source"), corpus.pop("text_field", text_field)
        stream = bool(corpus.pop("stream", False))
        if corpus:
            raise StudyConfigError(f"corpus spec has unknown keys {sorted(corpus)}; use 'source', 'text_field' "
                                   "and 'stream'")
    else:
        source = corpus
    if stream:  # larger than memory: train streams from the source, valid and test are lists
        if not isinstance(source, (str, os.PathLike)) or str(source).startswith(_SAMPLE):
            raise StudyConfigError(f"corpus stream=True needs a file, folder or 'hf:' source, got {source!r}")
        try:
            s = data_mod.split_source(source, valid=valid, test=test, seed=seed, text_field=text_field)
        except ValueError as e:
            raise StudyConfigError(f"corpus ({source!r}) is too small for the requested splits: {e}") from None
        return {"train": s["train"], "valid": list(s["valid"]), "test": list(s["test"])}
    if isinstance(source, Mapping):
        missing = [k for k in ("train", "test") if not source.get(k)]
        if missing:
            raise StudyConfigError(f"corpus splits dict needs non-empty {missing}; it has keys {sorted(source)}")
        return {k: [str(d) for d in source.get(k) or []] for k in ("train", "valid", "test")}
    if isinstance(source, (str, os.PathLike)):
        if str(source).startswith(_SAMPLE):
            docs, what = _sample_docs(str(source)), repr(str(source))
        elif not str(source).startswith("hf:") and data_mod.has_splits(source):
            return data_mod.load_splits(source, text_field)
        else:
            docs, what = data_mod.load_corpus(source, text_field), repr(str(source))
    elif isinstance(source, Sequence):
        docs, what = [str(d) for d in source], f"a list of {len(source)} documents"
    else:
        raise StudyConfigError(f"corpus must be a path, an 'hf:' spec, a list of documents or a splits dict, "
                               f"got {type(source).__name__}")
    try:
        return data_mod.split_documents(docs, valid=valid, test=test, seed=seed)
    except ValueError as e:
        raise StudyConfigError(f"corpus ({what}) is too small for the requested splits: {e}") from None


_SAMPLE = "sample:"  # "sample:ba": the shipped sample corpus of a language (offline demos, configs)


def _sample_docs(spec: str) -> list[str]:
    from ..data import sample_corpus

    try:
        return sample_corpus(spec[len(_SAMPLE):])
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise StudyConfigError(f"{spec!r}: {e}") from None


def load_parallel_file(spec: Any, language: LanguageProfile) -> dict[str, list[tuple[str, str]]]:
    """{reference code: [(target, reference), ...]} from a JSONL file with one field per language code
    (every reference language of ``language`` found in it), or ``{"source", "target_field",
    "reference_fields"}``."""
    spec = dict(spec) if isinstance(spec, Mapping) else {"source": spec}
    path = Path(spec.pop("source"))
    target = spec.pop("target_field", language.code)
    refs = list(spec.pop("reference_fields", None) or language.reference_languages)
    if spec:
        raise StudyConfigError(f"parallel spec has unknown keys {sorted(spec)}; use source, target_field, "
                               "reference_fields")
    check_file(path, "parallel file", "pass a JSONL file with one field per language code, e.g. "
                                      '{"ba": "...", "ru": "..."} per line')
    records = [record for _, record in iter_jsonl_records(path)]
    if not records or not isinstance(records[0], dict) or target not in records[0]:
        raise StudyConfigError(f"parallel file {str(path)!r} needs a {target!r} field on every line; "
                               f"its first line has {sorted(records[0]) if records else 'nothing'}")
    found = [r for r in refs if r in records[0]]
    if not found:
        raise StudyConfigError(f"parallel file {str(path)!r} has none of the reference fields {refs}; "
                               f"its first line has {sorted(records[0])}")
    return {r: [(rec[target], rec[r]) for rec in records if rec.get(target) and rec.get(r)] for r in found}


_OPTION_TARGETS = {
    "evaluation": ("lowres_adapt.evaluation", "PerplexityEvaluator"),
    "generation": ("lowres_adapt.modeling", "generate"),
}


def _check_options(what: str, options: Mapping[str, Any] | None) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise StudyConfigError(f"{what} must be a dict of options, got {options!r}")
    options = dict(options)
    known = _known_options(what)
    if known is not None:
        for key in options:
            if key not in known:
                raise StudyConfigError(f"unknown {what} option {key!r}{did_you_mean(key, known)}; "
                                       f"known: {', '.join(sorted(known))}")
    return options


def _known_options(what: str) -> list[str] | None:
    """Option names a ``training``/``evaluation``/``generation`` dict may hold (None: not checkable here)."""
    import importlib

    # arguments the study sets itself (its own options, or per run)
    study_args = {
        "training": {"model", "tokenizer", "train_texts", "eval_texts", "output_dir", "seed", "max_steps",
                     "block_size", "batch_size", "learning_rate", "train_dataset", "eval_dataset", "self",
                     "training_args", "callbacks", "per_device_train_batch_size", "data_seed", "model_kwargs",
                     "packing"},
        "evaluation": {"self"},
        "generation": {"model", "tokenizer", "prompts", "seed", "generate_kwargs", "load", "model_kwargs"},
    }.get(what, set())
    if what == "training":
        try:
            from dataclasses import fields

            from transformers import TrainingArguments

            from ..recipes import AdaptationRecipe
        except ImportError:
            return None
        names = set(inspect.signature(AdaptationRecipe.train).parameters) | {f.name for f in fields(TrainingArguments)}
        return sorted(names - study_args)
    target = _OPTION_TARGETS.get(what)
    if target is None:
        return None
    try:
        obj = getattr(importlib.import_module(target[0]), target[1])
    except (ImportError, AttributeError):
        return None
    params = inspect.signature(obj).parameters
    if what == "generation":  # generate() passes other keywords to model.generate: accept those too
        from transformers import GenerationConfig

        extra = set(GenerationConfig().to_dict())
    else:
        extra = set()
    return sorted((set(params) | extra) - study_args)


def _unique_labels(labels: list[str], disambiguators: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return [f"{lab}-{_slug(str(d))[-8:]}" if counts[lab] > 1 else lab for lab, d in zip(labels, disambiguators, strict=True)]


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    parts = []
    for k in keys[:5]:
        a, b = json.dumps(old.get(k), ensure_ascii=False, default=str), json.dumps(new.get(k), ensure_ascii=False,
                                                                                   default=str)
        parts.append(f"{k}: {a[:60]} -> {b[:60]}")
    return "; ".join(parts) + (f"; and {len(keys) - 5} more" if len(keys) > 5 else "") or "unknown difference"


# --------------------------------------------------------------------------------------------- the data a study reads
@dataclass
class StudyData:
    """Everything a study reads before it runs, loaded once by :func:`load_study_data`."""

    splits: dict[str, list[str]]
    test: list[str]  # the evaluated test documents (after max_eval_documents)
    valid: list[str]  # the documents the trainer evaluates on (after max_eval_documents)
    prompts: list[str]
    reference: list[str] | None
    parallel: Any  # pairs, or {reference code: pairs}, or None
    split_fingerprint: str


def load_study_data(corpus: Any, *, language: LanguageProfile, text_field: str = "text", valid: float = 0.05,
                    test: float = 0.05, split_seed: int = 0, max_eval_documents: int | None = None,
                    prompts: Any = None, num_prompts: int = 20, prompt_words: int = 6,
                    reference_corpus: Any = None, parallel: Any = None) -> StudyData:
    """Returns the splits, evaluated documents, prompts, reference texts and parallel pairs of a study
    (the arguments are the ``Study`` arguments of the same names); bad input raises before any training."""
    from ..data import split_fingerprint

    splits = corpus_splits(corpus, text_field=text_field, valid=valid, test=test, seed=split_seed)
    n = max_eval_documents
    test_docs = splits["test"][:n] if n else splits["test"]
    valid_docs = splits["valid"][:n] if n else splits["valid"]
    reference = None if reference_corpus is None else _load_texts(reference_corpus, "reference_corpus", text_field)
    return StudyData(splits, test_docs, valid_docs, _load_prompts(prompts, test_docs, num_prompts, prompt_words),
                     reference, _load_parallel(parallel, language), split_fingerprint(splits))


def _load_texts(spec: Any, what: str, text_field: str) -> list[str]:
    from ..data import load_corpus

    if isinstance(spec, Mapping):
        spec = dict(spec)
        return load_corpus(spec.pop("source"), spec.pop("text_field", "text"))
    if isinstance(spec, str) and spec.startswith(_SAMPLE):
        return _sample_docs(spec)
    if isinstance(spec, (str, os.PathLike)):
        return load_corpus(spec, text_field)
    texts = [str(t) for t in spec]
    if not texts:
        raise StudyConfigError(f"{what} is empty")
    return texts


def _load_prompts(spec: Any, test_docs: list[str], num_prompts: int, prompt_words: int) -> list[str]:
    if spec is None:
        prompts = [" ".join(d.split()[:prompt_words]) for d in test_docs[:num_prompts]]
    elif isinstance(spec, str) and spec.startswith(_SAMPLE):  # "sample:ba": the prompts shipped with the package
        from ..data import sample_prompts

        try:
            prompts = sample_prompts(spec[len(_SAMPLE):])[:num_prompts]
        except (ValueError, KeyError) as e:
            raise StudyConfigError(f"prompts {spec!r}: {e}") from None
    elif isinstance(spec, (str, os.PathLike)):
        text = read_text_file(spec, "prompts file", "pass a UTF-8 text file with one prompt per line, or 'sample:ba' "
                                                    "for the shipped Bashkir prompts")
        prompts = [ln.strip() for ln in text.splitlines() if ln.strip()]
        prompts = prompts[:num_prompts]
    else:
        prompts = [str(p) for p in spec]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise StudyConfigError("no prompts: give prompts=[...] or a prompts file with one prompt per line")
    return prompts


def _load_parallel(spec: Any, language: LanguageProfile) -> list[tuple[str, str]] | dict[str, list[tuple[str, str]]] | None:
    if spec is None:
        return None
    if isinstance(spec, Mapping) and "source" not in spec:
        return {str(k): [(str(a), str(b)) for a, b in v] for k, v in spec.items()}
    if isinstance(spec, (str, os.PathLike, Mapping)):
        return load_parallel_file(spec, language)
    return [(str(a), str(b)) for a, b in spec]


# --------------------------------------------------------------------------------------------- dry-run checks
def check_input_paths(*, models: Sequence[str], corpus: Any, reference_corpus: Any = None, prompts: Any = None,
                      parallel: Any = None) -> list[str]:
    """Returns one line per input saying what it is (``--dry-run`` prints them), after checking, without
    reading any weights or documents, that every local path exists and every ``sample:``/``hf:``/hub spec is
    well formed. Every problem is collected and raised at once as ``StudyConfigError``."""
    from ..data import sample_model_path
    from ..modeling import is_hub_id

    notes: list[str] = []
    problems: list[str] = []
    for model in models:
        if _TINY_RE.match(model):
            notes.append(f"model {model!r}: a tiny model built from a config")
        elif model.startswith(_SAMPLE):
            try:
                notes.append(f"model {model!r}: shipped, {sample_model_path(model[len(_SAMPLE):])}")
            except ValueError as e:
                problems.append(f"model {model!r}: {e}")
        elif Path(model).expanduser().is_dir():
            folder = Path(model).expanduser()
            if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
                notes.append(f"model {model!r}: local folder")
            else:
                problems.append(f"model {model!r} is a folder without config.json (nor adapter_config.json); pass a "
                                "folder written by save_pretrained")
        elif Path(model).expanduser().exists():
            problems.append(f"model {model!r} is a file; pass the model's folder")
        elif is_hub_id(model):
            notes.append(f"model {model!r}: hub id (not checked offline)")
        else:
            problems.append(f"model path {model!r} does not exist; pass a folder written by save_pretrained, a hub "
                            "id such as 'gpt2', 'sample:mini-gpt2-ru' or 'tiny:gpt2'")
    for what, spec in (("corpus", corpus), ("reference_corpus", reference_corpus)):
        note, problem = _check_corpus_spec(what, spec, is_hub_id)
        notes += [note] if note else []
        problems += [problem] if problem else []
    for what, spec in (("prompts", prompts), ("parallel", parallel)):
        source = spec.get("source") if isinstance(spec, Mapping) else spec
        if isinstance(source, str) and source.startswith(_SAMPLE):
            notes.append(f"{what} {source!r}: shipped sample")
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source).expanduser()
            if path.is_file():
                notes.append(f"{what} {str(source)!r}: file")
            else:
                problems.append(f"{what} file {str(source)!r} " + ("is a folder" if path.is_dir() else "does not exist"))
    if problems:
        raise StudyConfigError("; ".join(problems))
    return notes


def _check_corpus_spec(what: str, spec: Any, is_hub_id) -> tuple[str | None, str | None]:
    """(note, problem) for a corpus spec: a local path must exist; 'hf:' and 'sample:' specs must be well formed."""
    if isinstance(spec, Mapping) and "source" in spec:
        spec = spec["source"]
    if spec is None or not isinstance(spec, (str, os.PathLike)):
        return (None if spec is None else f"{what}: given in the config"), None
    text = os.fspath(spec)
    if text.startswith(_SAMPLE):
        from ..data import sample_corpus

        try:
            sample_corpus(text[len(_SAMPLE):])
        except (ValueError, FileNotFoundError, KeyError) as e:
            return None, f"{what} {text!r}: {e}"
        return f"{what} {text!r}: shipped sample", None
    if text.startswith("hf:"):
        name = text[3:].rsplit("@", 1)[0]  # hf:<dataset id or folder>[:<config>][@<split>]
        name = name.rsplit(":", 1)[0] if ":" in name else name
        if Path(name).expanduser().is_dir():
            return f"{what} {text!r}: local dataset", None
        if is_hub_id(name):
            return f"{what} {text!r}: hub dataset (not checked offline)", None
        return None, f"{what} {text!r} is not a dataset spec; use 'hf:<dataset id>[:<config>][@<split>]'"
    path = Path(text).expanduser()
    if not path.exists():
        return None, (f"{what} {text!r} does not exist; pass a .txt/.jsonl file, a folder of them, "
                      "'hf:<dataset>' or 'sample:ba'")
    return f"{what} {text!r}: {'folder' if path.is_dir() else 'file'}", None

"""The study grid: models x recipes x seeds on one corpus, resumable, with readable reports.

For each model the tokenizer is diagnosed once and the unadapted base is evaluated once (row ``base``);
for each model x recipe x seed a run trains, evaluates the test split (pooled perplexities with
bootstrap intervals), optionally measures bits per byte on a reference-language corpus before and after
(retention), generates from prompts and measures language drift.

Output folder::

    <output_dir>/
      study.json                 settings, their fingerprint, split fingerprint, versions, the grid
      diagnostics/<model>.json   tokenizer diagnostics, once per model
      base/<model>/              the unadapted model: metrics.json, generations.jsonl
      runs/<model>__<recipe>__s<seed>/
        config.json              written first
        log.txt                  the trainer's output (progress bars, loss lines, warnings)
        train/                   the recipe's output (adapter or model, tokenizer, metrics)
        generations.jsonl
        metrics.json             written LAST, atomically: its presence means the run finished
        error.txt, error.json    instead of metrics.json when the run failed (with the traceback)
      results.md, results.csv, runs.csv, results.json, plots/*.png

``run()`` is resumable: a run whose ``metrics.json`` matches the settings is read back, not redone; a
folder without it (a run killed mid-way) is cleared and the run restarts; failed runs are retried. A
folder made with different settings is refused (``StudyConfigError``); adding models, recipes or seeds
to a finished study reuses every run already done.

Example::

    >>> import lowres_adapt as la
    >>> study = la.Study(models=["distilgpt2"], recipes=["full", "lora-r16"], seeds=[0, 1],
    ...                  corpus=["text one", "text two"], output_dir="runs/x")
    >>> study.plan()
    ['distilgpt2__full__s0', 'distilgpt2__full__s1', 'distilgpt2__lora-r16__s0', 'distilgpt2__lora-r16__s1']
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._utils import atomic_write_json, atomic_write_text, did_you_mean, library_versions, read_text_file
from ..data import PACKINGS, resolve_sample, sample_model_path
from ..errors import StudyConfigError
from ..languages import BASHKIR, LanguageProfile
from ..modeling import check_model_kwargs, default_base_load
from ._executor import InlineExecutor, run_all
from ._folder import check_folder, now, run_in_folder
from ._inputs import (
    _RECIPE_EXAMPLES,
    _SAMPLE,
    _TINY_RE,
    StudyData,
    _check_options,
    _hash,
    _model_label,
    _recipe_dict,
    _recipe_label,
    _texts_fingerprint,
    _unique_labels,
    check_input_paths,
    corpus_splits,
    drift_backend_that_runs,
    load_study_data,
    resolve_language,
    resolve_recipe,
)
from ._rows import BASE_RECIPE, _read_json, is_base_label, read_record
from ._steps import StudySteps, _planned_peak
from .report import StudyResults

__all__ = ["Study", "StudyResults", "corpus_splits", "resolve_recipe"]

log = logging.getLogger(__name__)


def _gib(n: int | None) -> str:
    return "no plan" if n is None else f"planned {n / 2**30:.2f} GiB"

_FORMAT = 1  # version of the output folder layout


@dataclass(frozen=True)
class _RunSpec:
    run_id: str
    model: str
    model_label: str
    recipe: Any = field(compare=False)
    recipe_label: str = ""
    seed: int = 0


# --------------------------------------------------------------------------------------------- Study
class Study(StudySteps):
    """A grid of models x recipes x seeds trained and evaluated on one corpus; ``run()`` returns a
    :class:`StudyResults` and writes the reports into ``output_dir``.

    Arguments are stored and checked at construction (a bad recipe name or option fails at once);
    the corpus is read and the output folder checked when ``run()`` starts, before any training.

    Example::

        >>> import lowres_adapt as la
        >>> study = la.Study(models=["tiny:gpt2"], recipes=["full", "lora"], seeds=[0],
        ...                  corpus=la.sample_corpus("ba"), output_dir="runs/doc", max_steps=2)
        >>> len(study.plan())
        2
        >>> results = study.run()                                   # doctest: +SKIP
        >>> print(results.to_markdown())                            # doctest: +SKIP

    Models are local paths, hub ids, or ``"tiny:gpt2"`` / ``"tiny:llama"`` (a tiny model built from a
    config with a tokenizer trained on the train split, to try the pipeline offline).
    """

    def __init__(
        self,
        models: Sequence[str | os.PathLike],
        recipes: Sequence[Any],
        seeds: Sequence[int] = (0, 1, 2),
        corpus: Any = None,
        output_dir: str | os.PathLike = "runs/study",
        language: str | LanguageProfile = BASHKIR,
        *,
        reference_corpus: Any = None,
        prompts: Sequence[str] | str | os.PathLike | None = None,
        parallel: Any = None,
        valid: float = 0.05,
        test: float = 0.05,
        split_seed: int = 0,
        text_field: str = "text",
        max_steps: int = 200,
        block_size: int = 128,
        batch_size: int = 8,
        learning_rate: float | None = None,
        packing: str = "isolated",
        training: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        max_eval_documents: int | None = None,
        drift_backend: str = "ngram",
        generation: Mapping[str, Any] | None = None,
        num_prompts: int = 20,
        prompt_words: int = 6,
        evaluate_base: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        retry_failed: bool = True,
        keep_models: bool = True,
        name: str | None = None,
        progress: bool = True,
    ):
        if isinstance(models, (str, os.PathLike)):
            models = [models]
        self.models = [os.fspath(m) for m in models]
        if not self.models:
            raise StudyConfigError("models is empty; give at least one model path, hub id or 'tiny:gpt2'")
        if len(set(self.models)) != len(self.models):
            raise StudyConfigError(f"models lists a model twice: {self.models}")
        for model in self.models:  # "sample:<name>" must name a shipped model; say so now, not after hours
            if model.startswith(_SAMPLE):
                try:
                    sample_model_path(model[len(_SAMPLE):])
                except ValueError as e:
                    raise StudyConfigError(f"models: {e}") from None
        if isinstance(recipes, (str, Mapping)) or not isinstance(recipes, Sequence):
            recipes = [recipes]
        if not recipes:
            raise StudyConfigError(f"recipes is empty; give at least one, e.g. {list(_RECIPE_EXAMPLES[:3])}")
        self.recipes = [resolve_recipe(r) for r in recipes]
        if isinstance(seeds, int):
            seeds = [seeds]
        self.seeds = list(seeds)
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in self.seeds):
            raise StudyConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise StudyConfigError(f"seeds lists a seed twice: {self.seeds}")
        if corpus is None:
            raise StudyConfigError("corpus is required: a path, an 'hf:<dataset>' spec, a list of documents, "
                                   "or a {'train', 'valid', 'test'} dict of lists")
        self.corpus = corpus
        self.output_dir = Path(output_dir)
        self.language = resolve_language(language)  # a code, a profile, a dict or a YAML/JSON file of fields
        self.reference_corpus = reference_corpus
        self.prompts = prompts
        self.parallel = parallel
        self.valid, self.test, self.split_seed, self.text_field = valid, test, split_seed, text_field
        for fname, value in (("max_steps", max_steps), ("block_size", block_size), ("batch_size", batch_size),
                             ("num_prompts", num_prompts), ("prompt_words", prompt_words)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyConfigError(f"{fname} must be a positive integer, got {value!r}")
        if max_eval_documents is not None and (not isinstance(max_eval_documents, int) or max_eval_documents < 1):
            raise StudyConfigError(f"max_eval_documents must be a positive integer or None, got {max_eval_documents!r}")
        if learning_rate is not None and (not isinstance(learning_rate, (int, float)) or learning_rate <= 0):
            raise StudyConfigError(f"learning_rate must be a positive number or None (recipe default), "
                                   f"got {learning_rate!r}")
        self._drift_runs = drift_backend_that_runs(drift_backend)  # "auto" -> "ngram"; a typo fails here
        if packing not in PACKINGS:
            raise StudyConfigError(f"packing={packing!r} is not known{did_you_mean(str(packing), PACKINGS)}; use "
                                   f"one of {PACKINGS} ('concatenated' resumes a study made before 'isolated')")
        self.packing = packing
        self.max_steps, self.block_size, self.batch_size = max_steps, block_size, batch_size
        self.learning_rate = learning_rate
        self.training = _check_options("training", training)
        self.evaluation = _check_options("evaluation", evaluation)
        self.generation = _check_options("generation", generation)
        self.max_eval_documents = max_eval_documents
        self.drift_backend = drift_backend
        self.num_prompts, self.prompt_words = num_prompts, prompt_words
        self.evaluate_base, self.retry_failed, self.keep_models = evaluate_base, retry_failed, keep_models
        try:  # checked now (unknown options, library-owned ones), not after hours of training
            self.model_kwargs = check_model_kwargs(dict(model_kwargs) if model_kwargs is not None else None)
        except (TypeError, ValueError) as e:
            raise StudyConfigError(f"model_kwargs: {e}") from None
        self.name, self.progress = name, progress
        self._specs = self._build_specs()

    def __repr__(self) -> str:
        return (f"Study(models={self.models!r}, recipes={[_recipe_label(r) for r in self.recipes]!r}, "
                f"seeds={self.seeds!r}, output_dir={str(self.output_dir)!r}, language={self.language.code!r}, "
                f"max_steps={self.max_steps})")

    # ---------------------------------------------------------------- construction helpers
    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | os.PathLike, **overrides: Any) -> Study:
        """Returns a Study from a dict or a YAML/JSON file whose keys are ``Study``'s arguments.

        Unknown keys fail with the known ones listed; ``overrides`` replace keys of the file. Corpus
        entries may be ``{"source": path, "text_field": name}``; ``language`` a code or a dict of
        ``LanguageProfile`` fields.

        Example::

            >>> import lowres_adapt as la
            >>> la.Study.from_config({"models": ["tiny:gpt2"], "recipes": ["lora"], "seeds": [0],
            ...                       "corpus": ["a b", "c d"]}).plan()
            ['tiny-gpt2__lora-r8__s0']
        """
        if not isinstance(config, Mapping):
            path = Path(config)
            text = read_text_file(path, "study config", "pass a YAML or JSON file of Study arguments "
                                                        "(see examples/study.yaml)")
            import yaml

            try:
                config = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            except (ValueError, yaml.YAMLError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StudyConfigError(f"study config {str(path)!r} does not parse: {first}") from None
            if not isinstance(config, Mapping):
                raise StudyConfigError(f"study config {str(path)!r} must hold a mapping of Study arguments")
        config = {**dict(config), **{k: v for k, v in overrides.items() if v is not None}}
        known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        for key in config:
            if key not in known:
                raise StudyConfigError(f"unknown study option {key!r}{did_you_mean(key, known)}; known options: "
                                       f"{', '.join(known)}")
        for key in ("models", "recipes"):
            if key not in config:
                raise StudyConfigError(f"study config needs {key!r}")
        if isinstance(config.get("language"), Mapping):
            config["language"] = {"code": "xx", **config["language"]}  # earlier versions defaulted the code
        return cls(**config)

    def to_config(self) -> dict:
        """Returns the study's arguments as a JSON/YAML-friendly dict (recipes as dicts)."""
        def spec(x):
            if x is None or isinstance(x, (str, int, float, Mapping)):
                return x
            if isinstance(x, os.PathLike):
                return os.fspath(x)
            return f"<{type(x).__name__} of {len(x)} items>" if hasattr(x, "__len__") else repr(x)

        return {
            "models": self.models, "recipes": [_recipe_dict(r) for r in self.recipes], "seeds": self.seeds,
            "corpus": spec(self.corpus), "output_dir": str(self.output_dir), "language": self.language.code,
            "reference_corpus": spec(self.reference_corpus), "prompts": spec(self.prompts),
            "parallel": spec(self.parallel), "valid": self.valid, "test": self.test,
            "split_seed": self.split_seed, "text_field": self.text_field, "max_steps": self.max_steps,
            "block_size": self.block_size, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
            "packing": self.packing, "training": self.training, "evaluation": self.evaluation,
            "max_eval_documents": self.max_eval_documents, "drift_backend": self.drift_backend,
            "generation": self.generation, "num_prompts": self.num_prompts, "prompt_words": self.prompt_words,
            "evaluate_base": self.evaluate_base, "model_kwargs": self.model_kwargs,
            "retry_failed": self.retry_failed, "keep_models": self.keep_models, "name": self.name,
        }

    def _build_specs(self) -> list[_RunSpec]:
        model_labels = _unique_labels([_model_label(m) for m in self.models], self.models)
        recipe_labels = _unique_labels([_recipe_label(r) for r in self.recipes],
                                       [_hash(_recipe_dict(r), 6) for r in self.recipes])
        if len({_hash(_recipe_dict(r)) for r in self.recipes}) != len(self.recipes):
            raise StudyConfigError(f"recipes lists the same recipe twice: {recipe_labels}")
        self._model_labels = dict(zip(self.models, model_labels, strict=True))
        return [
            _RunSpec(f"{ml}__{rl}__s{seed}", model, ml, recipe, rl, seed)
            for model, ml in zip(self.models, model_labels, strict=True)
            for recipe, rl in zip(self.recipes, recipe_labels, strict=True)
            for seed in self.seeds
        ]

    def check_inputs(self) -> list[str]:
        """Returns one line per model and input file saying what it is, after checking that local paths
        exist and ``sample:``/``hf:``/hub specs are well formed; nothing is loaded (``--dry-run``)."""
        return check_input_paths(models=self.models, corpus=self.corpus, reference_corpus=self.reference_corpus,
                                 prompts=self.prompts, parallel=self.parallel)

    def plan(self) -> list[str]:
        """Returns the run ids of the grid, in the order ``run()`` executes them (model, recipe, seed)."""
        return [s.run_id for s in self._specs]

    def plan_memory(self, device_memory: int | str = "24GiB", *, device: str = "cuda", **options: Any) -> list[dict]:
        """Returns one row per cell: ``run_id``, ``model``, ``recipe``, ``seed``, ``planned_peak_bytes`` (one
        training step, per device), ``fits`` (in ``device_memory``), ``largest_batch_size`` and ``error``.

        Only the models' configs are read (no weights); the study's ``batch_size``, ``block_size`` and
        ``training`` options (``optim``, ``gradient_checkpointing``, ``gradient_accumulation_steps``) are
        planned; ``options`` go to :func:`lowres_adapt.plan_memory` (``sharding=``, ``margin=``, ...).

        Example::

            >>> import lowres_adapt as la
            >>> study = la.Study(models=["tiny:gpt2"], recipes=["full", "lora"], seeds=[0], corpus=["a b", "c d"])
            >>> [(r["recipe"], r["fits"]) for r in study.plan_memory("1GiB")]
            [('full', True), ('lora-r8', True)]
        """
        from ._plan import plan_cells

        return plan_cells(self, device_memory, device=device, **options)

    # ---------------------------------------------------------------- data
    def _load_data(self) -> StudyData:
        return load_study_data(
            self.corpus, language=self.language, text_field=self.text_field, valid=self.valid, test=self.test,
            split_seed=self.split_seed, max_eval_documents=self.max_eval_documents, prompts=self.prompts,
            num_prompts=self.num_prompts, prompt_words=self.prompt_words, reference_corpus=self.reference_corpus,
            parallel=self.parallel)

    # ---------------------------------------------------------------- settings and the folder
    def _settings(self, data: StudyData) -> dict:
        """Everything that changes a run's numbers (the grid itself aside)."""
        return {
            "language": self.language.to_dict(), "split_fingerprint": data.split_fingerprint,
            "test_fingerprint": _texts_fingerprint(data.test), "valid_fingerprint": _texts_fingerprint(data.valid),
            "reference_fingerprint": _texts_fingerprint(data.reference),
            "parallel_fingerprint": _hash(data.parallel) if data.parallel else None,
            "prompts": data.prompts, "max_steps": self.max_steps, "block_size": self.block_size,
            "batch_size": self.batch_size, "learning_rate": self.learning_rate, "training": self.training,
            "evaluation": self.evaluation, "drift_backend": self._drift_runs, "generation": self.generation,
            "evaluate_base": self.evaluate_base, "model_kwargs": self.model_kwargs, "base_loads": self._base_loads(),
            # studies made before isolated packing trained concatenated and have no such key: the same
            # settings (packing="concatenated") keep their fingerprint and resume, the new default does not
            **({} if self.packing == "concatenated" else {"packing": self.packing}),
        }

    def _run_load(self, recipe) -> str:
        """How a run of ``recipe`` loads its base here (the library's one policy; see modeling.policy)."""
        if not hasattr(recipe, "base_load"):  # a duck-typed recipe: the policy's full-precision base
            return default_base_load(quantize=False, adapters=False)
        return recipe.base_load(self.training.get("dtype"))

    def _base_loads(self) -> list[str]:
        """The distinct loadings of the grid's runs: each gets its own base row, scored the same way."""
        return list(dict.fromkeys(self._run_load(r) for r in self.recipes))

    def _base_key(self, label: str, load: str) -> str:
        return label if len(self._base_loads()) == 1 else f"{label}@{load}"

    def _write_meta(self, settings: dict, fingerprint: str, data: StudyData, old: dict | None) -> dict:
        meta = {
            "format": _FORMAT, "name": self.name, "settings_fingerprint": fingerprint, "settings": settings,
            "language": self.language.to_dict(), "split_fingerprint": data.split_fingerprint,
            "split_sizes": {k: len(v) for k, v in data.splits.items()}, "evaluated_test_documents": len(data.test),
            "seeds": self.seeds, "models": self.models, "model_labels": list(self._model_labels.values()),
            "recipes": [_recipe_dict(r) for r in self.recipes],
            "recipe_labels": list(dict.fromkeys(s.recipe_label for s in self._specs)),
            "run_ids": self.plan(), "config": self.to_config(), "library_versions": library_versions(),
            "created_at": (old or {}).get("created_at", now()), "updated_at": now(),
        }
        atomic_write_json(self.output_dir / "study.json", meta)
        return meta

    # ---------------------------------------------------------------- running
    def run(self, executor: Any = None, *, device_memory: int | str | None = None) -> StudyResults:
        """Returns the :class:`StudyResults` of the whole grid, running what is not done yet.

        Reports (``results.md``, ``results.csv``, ``runs.csv``, ``results.json``, ``plots/``) are written
        into ``output_dir``; their paths are in ``results.paths``.

        ``executor``: ``None`` runs the cells one after another here; any object with
        ``submit(fn, *args)`` returning a future (``ProcessPoolExecutor``, dask's
        ``Client.get_executor()``, submitit's ``AutoExecutor``, mpi4py's ``MPIPoolExecutor``, or
        :func:`make_executor`) runs each cell in its worker, which writes the cell's run folder (the
        output folder must be shared with the workers). A cell whose worker dies is recorded as failed
        and retried by the next ``run()``; two ``run()``s on one folder never do a cell twice.
        ``device_memory`` (e.g. ``"24GiB"``): refuse the grid before anything runs when a cell's planned
        step does not fit one device (see :meth:`plan_memory`).
        """
        from tqdm.auto import tqdm

        t_start = time.perf_counter()
        if device_memory is not None:
            misfits = [r for r in self.plan_memory(device_memory) if not r["fits"]]
            if misfits:
                raise StudyConfigError(
                    f"{len(misfits)} cells do not fit {device_memory}: "
                    + "; ".join(f"{r['run_id']} ({r['error'] or _gib(r['planned_peak_bytes'])})" for r in misfits)
                    + ". Lower batch_size/block_size, turn on gradient checkpointing, or use a larger device")
        data = self._load_data()
        settings = self._settings(data)
        fingerprint = _hash(settings)
        old_meta = check_folder(self.output_dir, settings, fingerprint)
        # Refuse finished runs made with another recipe config under the same id before touching anything.
        for spec in self._specs:
            rec = read_record(self.output_dir / "runs" / spec.run_id)
            if rec is not None and rec.get("status") == "ok" and rec.get("recipe") != _recipe_dict(spec.recipe):
                raise StudyConfigError(
                    f"run {spec.run_id!r} in {str(self.output_dir)!r} was made with another recipe config "
                    f"({rec.get('recipe')} vs {_recipe_dict(spec.recipe)}); use another output_dir"
                )
        meta = self._write_meta(settings, fingerprint, data, old_meta)
        paths = self._materialize_models(data)
        ctx = {"data": data, "fingerprint": fingerprint, "paths": paths}

        diagnostics, base = {}, {}
        loads = self._base_loads()
        bar = tqdm(total=len(self.models) * (1 + self.evaluate_base * len(loads)) + len(self._specs), desc="study",
                   unit="step", disable=not self.progress, dynamic_ncols=True)
        with bar:
            for model in self.models:
                label = self._model_labels[model]
                bar.set_postfix_str(f"{label}: tokenizer diagnostics")
                diagnostics[label] = self._diagnostics_step(model, ctx)
                # the diagnostics warn before any training starts (also in diagnostics/<model>.json and the report)
                for warning in (diagnostics[label].get("report") or {}).get("warnings", []):
                    if self.progress:
                        bar.write(f"warning: tokenizer of {label}: {warning}")
                    else:
                        log.warning("tokenizer of %s: %s", label, warning)
                bar.update()
                for load in loads if self.evaluate_base else ():
                    bar.set_postfix_str(f"{label}: base model ({load})")
                    base[self._base_key(label, load)] = self._base_step(model, ctx, diagnostics[label], load)
                    bar.update()
            records = self._run_cells(ctx, diagnostics, base, bar, executor)
        results = StudyResults(records, study=meta, diagnostics=diagnostics, base=base, output_dir=self.output_dir)
        results.paths = results.save()
        n_failed = len(results.failed)
        log.info("study finished in %.1f s: %d runs, %d failed; report: %s", time.perf_counter() - t_start,
                 len(records), n_failed, results.paths["markdown"])
        return results

    def _run_fp(self, fingerprint: str, spec: _RunSpec) -> str:
        return _hash({"settings": fingerprint, "model": spec.model, "recipe": _recipe_dict(spec.recipe),
                      "seed": spec.seed})

    def _materialize_models(self, data: StudyData) -> dict[str, str]:
        """Model spec -> loadable path; builds ``tiny:`` models (once) into ``<output_dir>/models``."""
        paths = {}
        for model in self.models:
            m = _TINY_RE.match(model)
            if not m:  # a path, a hub id, or "sample:<name>" (the shipped model's folder)
                paths[model] = resolve_sample(model)
                continue
            target = self.output_dir / "models" / self._model_labels[model]
            if not (target / "config.json").is_file():
                from ..modeling import save_tiny_checkpoint, train_tokenizer

                tok = train_tokenizer(list(itertools.islice(data.splits["train"], 5000)), vocab_size=1000)
                tmp = target.with_name(target.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                save_tiny_checkpoint(tmp, m.group(1), tokenizer=tok, hidden_size=64, num_layers=2, num_heads=4,
                                     max_positions=max(256, self.block_size), seed=0)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            paths[model] = str(target)
        return paths

    def _diagnostics_step(self, model: str, ctx: dict) -> dict:
        label = self._model_labels[model]
        path = self.output_dir / "diagnostics" / f"{label}.json"
        fp = _hash({"settings": ctx["fingerprint"], "model": model, "step": "diagnostics"})
        old = _read_json(path)
        if old is not None and old.get("fingerprint") == fp:
            return old
        rec: dict[str, Any] = {"model": model, "model_label": label, "fingerprint": fp}
        try:
            report, tok_fp = self._diagnose(ctx["paths"][model], ctx["data"])
            rec.update(report=report, tokenizer_fingerprint=tok_fp)
            atomic_write_json(path, rec)
        except Exception as e:  # recorded; the model's runs will fail (and say why) if it cannot load
            log.warning("tokenizer diagnostics failed for %s: %s", model, e)
            rec.update(error=f"{type(e).__name__}: {e}")
        return rec

    def _base_step(self, model: str, ctx: dict, diag: dict | None, load: str) -> dict:
        """The unadapted model, loaded as the runs of this loading load it (NF4 for QLoRA's row)."""
        label = self._model_labels[model]
        key = self._base_key(label, load)
        single = key == label
        run_dir = self.output_dir / "base" / (label if single else f"{label}-{load}")
        fp = _hash({"settings": ctx["fingerprint"], "model": model, "step": "base", "load": load})
        head = {"run_id": f"{label}__{BASE_RECIPE}" + ("" if single else f"-{load}"), "run_fingerprint": fp,
                "model": model, "model_label": label,
                "recipe_label": BASE_RECIPE if single else f"{BASE_RECIPE} ({load})", "recipe": None, "rank": None,
                "seed": self.seeds[0], "base_load": load,
                "tokenizer_fingerprint": (diag or {}).get("tokenizer_fingerprint")}

        def body():
            model_obj, tokenizer = self._load_model(ctx["paths"][model], load)
            n_params = sum(p.numel() for p in model_obj.parameters())
            return model_obj, tokenizer, {"trainable_params": 0, "total_params": n_params}

        return self._execute(run_dir, head, body, ctx)

    def _run_cells(self, ctx: dict, diagnostics: dict, base: dict, bar, executor: Any) -> list[dict]:
        """The grid's cells through ``executor`` (see ``_executor``); records in plan order."""
        cells, done = [], {}
        for spec in self._specs:
            run_dir = self.output_dir / "runs" / spec.run_id
            head = self._run_head(spec, ctx, diagnostics.get(spec.model_label))
            old = read_record(run_dir, head["run_fingerprint"])
            if old is not None and (old.get("status") == "ok" or not self.retry_failed):
                done[spec.run_id] = old  # finished: read back here, never submitted
                bar.update()
                continue
            cells.append((spec.run_id, run_dir, head, self._run_step,
                          (spec, ctx, diagnostics.get(spec.model_label),
                           base.get(self._base_key(spec.model_label, self._run_load(spec.recipe))))))

        def on_done(run_id: str, rec: dict) -> None:
            bar.set_postfix_str(run_id)
            bar.update()

        done.update(run_all(InlineExecutor() if executor is None else executor, cells,
                            locks=self.output_dir / "locks", on_done=on_done))
        return [done[spec.run_id] for spec in self._specs]

    def _run_head(self, spec: _RunSpec, ctx: dict, diag: dict | None) -> dict:
        recipe = _recipe_dict(spec.recipe)
        return {"run_id": spec.run_id, "run_fingerprint": self._run_fp(ctx["fingerprint"], spec),
                "model": spec.model, "model_label": spec.model_label, "recipe_label": spec.recipe_label,
                "recipe": recipe, "rank": recipe.get("r"), "seed": spec.seed,
                "tokenizer_fingerprint": (diag or {}).get("tokenizer_fingerprint")}

    def _run_step(self, spec: _RunSpec, ctx: dict, diag: dict | None, base: dict | None) -> dict:
        run_dir = self.output_dir / "runs" / spec.run_id
        head = self._run_head(spec, ctx, diag)
        before = ((base or {}).get("reference") or {}).get("bits_per_byte_after")

        def body():
            run = self._train(spec, ctx["paths"][spec.model], ctx["data"], run_dir / "train")
            metrics = dict(run.metrics)
            metrics["planned_peak_memory_bytes"] = _planned_peak(ctx["paths"][spec.model], spec.recipe, metrics)
            return run.model, run.tokenizer, metrics

        return self._execute(run_dir, head, body, ctx, reference_before=before)

    def _execute(self, run_dir: Path, head: dict, body, ctx: dict, reference_before: float | None = None) -> dict:
        """Reads back a finished run, or (re)runs it: ``body`` trains or loads, then the measurements."""
        data: StudyData = ctx["data"]

        def measure(model, tokenizer) -> dict:
            test = self._evaluate(model, tokenizer, data.test)
            reference = None
            if data.reference is not None:
                after = self._evaluate(model, tokenizer, data.reference).get("bits_per_byte")
                before = after if is_base_label(head["recipe_label"]) else reference_before
                reference = {"bits_per_byte_before": before, "bits_per_byte_after": after,
                             "n_documents": len(data.reference)}
            generations = self._generate(model, tokenizer, data.prompts, head["seed"])
            drift, per_text = self._drift(generations)
            lines = [json.dumps({"prompt": p, "continuation": g, **a}, ensure_ascii=False)
                     for p, g, a in zip(data.prompts, generations, per_text, strict=False)]
            atomic_write_text(run_dir / "generations.jsonl", "\n".join(lines) + "\n")
            return {"test": test, "reference": reference, "drift": drift}

        config = {"settings_fingerprint": ctx["fingerprint"], "settings": self._settings(data),
                  "split_fingerprint": data.split_fingerprint}
        return run_in_folder(run_dir, head, config, body=body, measure=measure, retry_failed=self.retry_failed,
                             keep_models=self.keep_models)

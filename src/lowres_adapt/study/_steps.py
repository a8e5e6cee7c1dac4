"""The expensive steps of a study, one library call each: train a run, load a model, evaluate bits per
byte, generate, score drift, diagnose a tokenizer, and plan a run's memory. ``Study`` inherits them;
override one in a subclass to change how a step is done (the tests replace them with fakes).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ._inputs import StudyData, _hash

log = logging.getLogger("lowres_adapt.study")  # the steps log as the study does (one logger to filter)


class StudySteps:
    """The steps a ``Study`` runs; they read the study's settings (``training``, ``evaluation``,
    ``generation``, ``language``, ``drift_backend``, ...) from ``self``."""

    def _train(self, spec, model_path: str, data: StudyData, output_dir: Path):
        kwargs = dict(self.training)
        if self.learning_rate is not None:
            kwargs["learning_rate"] = self.learning_rate
        return spec.recipe.train(
            model_path, data.splits["train"], eval_texts=data.valid or None, output_dir=str(output_dir),
            seed=spec.seed, max_steps=self.max_steps, block_size=self.block_size, batch_size=self.batch_size,
            model_kwargs=self.model_kwargs or None, packing=self.packing,
            **{"data_cache": self.output_dir / "cache" / "blocks", **kwargs},
        )

    def _load_model(self, model_path: str, load: str):
        """The base for its row, through the library's one loader, in the loading its runs use."""
        from ..modeling import load_for_inference

        return load_for_inference(model_path, load=load, model_kwargs=self.model_kwargs or None)

    def _evaluate(self, model, tokenizer, texts: list[str]) -> dict:
        from ..evaluation import PerplexityEvaluator

        options = {"progress": False, **self.evaluation}
        with warnings.catch_warnings():  # a caution about few documents goes to the report, not the console
            warnings.filterwarnings("ignore", message="the confidence intervals rest on")
            return PerplexityEvaluator(**options).evaluate(model, tokenizer, texts).to_dict()

    def _generate(self, model, tokenizer, prompts: list[str], seed: int) -> list[str]:
        from ..modeling import generate

        options = {"max_new_tokens": 64, **self.generation}
        return list(generate(model, tokenizer, prompts, seed=seed, **options))

    def _drift(self, texts: list[str]) -> tuple[dict, list[dict]]:
        from ..drift import DriftDetector, flagged_examples

        summary = dict(DriftDetector(target=self.language, backend=self.drift_backend).evaluate(texts))
        keep = ("target_share", "drifted", "first_switch", "switch_language", "status")
        full = summary.pop("per_text", [{}] * len(texts))
        summary["flagged_examples"] = flagged_examples(full, texts, limit=3)  # with their evidence, for the report
        per_text = [{k: a.get(k) for k in keep} | ({"explanation": a["explanations"][0]} if a.get("explanations") else {})
                    for a in full]
        return summary, per_text

    def _diagnose(self, model_path: str, data: StudyData) -> tuple[dict, str]:
        from transformers import AutoTokenizer

        from ..tokenization import diagnose_tokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        report = diagnose_tokenizer(tokenizer, data.test, language=self.language, parallel=data.parallel,
                                    progress=False)
        vocab = sorted(tokenizer.get_vocab().items())
        return {**report.to_dict(), "document_start": self._document_start(tokenizer)}, \
            _hash([type(tokenizer).__name__, vocab])

    def _document_start(self, tokenizer) -> dict:
        """Whether the tokenizer has a BOS, and which token training and evaluation start documents with."""
        from ..data import document_start_id

        start = document_start_id(tokenizer)
        return {"bos_token": tokenizer.bos_token, "has_bos": tokenizer.bos_token_id is not None,
                "bos_is_eos": tokenizer.bos_token_id is not None and tokenizer.bos_token_id == tokenizer.eos_token_id,
                "start_token": None if start is None else tokenizer.convert_ids_to_tokens(start),
                "packing": self.packing, "used_in_training": self.packing == "isolated" and start is not None,
                "used_in_evaluation": start is not None}


def _planned_peak(model_path: str, recipe, metrics: dict) -> int | None:
    """The memory plan's predicted step peak for a finished run (reported next to the measured one)."""
    from ..planning import plan_for_run

    if not all(k in metrics for k in ("batch_size", "block_size", "gradient_checkpointing")):
        return None  # not a recipe.train run (nothing to plan from)
    try:
        return plan_for_run(model_path, recipe, metrics).total
    except Exception as exc:  # noqa: BLE001 - a plan is a report extra: it never fails a run
        log.warning("no memory plan for %s: %s: %s", model_path, type(exc).__name__, exc)
        return None

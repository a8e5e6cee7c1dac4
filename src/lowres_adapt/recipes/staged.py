"""Staged adaptation: one model trained through a sequence of stages, each with its own data and settings.

LlamaTurk adapted Llama to Turkish by continual training on raw text ("c"), then instruction tuning
("i"), and compared "c", "c+i" and "i". Here a :class:`StagedRecipe` wraps any recipe (full fine-tuning,
LoRA, QLoRA) and runs its :class:`Stage` list in order on one model: the model (and a LoRA adapter)
coming out of a stage goes into the next, which keeps training the same weights or adapter.

* ``kind="causal_lm"``: documents, packed into blocks exactly as ``recipe.train`` packs them (isolated by
  default; ``packing="concatenated"`` in ``train``'s keywords or a stage's ``training_args`` for the old
  blocks).
* ``kind="vocabulary"``: no training: extends the vocabulary with ``new_tokens`` tokens learnt from the
  stage's documents (``init`` for the new rows), and the stages after it train the new rows (``rows``)
  for the same number of text bytes (``equal_bytes``); see ``_extension.py``. It must come first.
* ``kind="instruction"``: prompt/response pairs written with ``template`` (Alpaca style by default)::

      [BOS] ### Instruction:\\n{prompt}\\n\\n### Response:\\n | {response} [EOS]
      ------------------ labels -100 ----------------------  | ---- scored ----

  The loss is on the response tokens (and the closing EOS) only. Each example is one sequence (no
  packing), cut to ``block_size`` tokens; an example whose response would be cut away entirely is dropped.

A stage's settings left ``None`` are taken from the keywords given to :meth:`StagedRecipe.train` (the
same ones ``recipe.train`` takes), then from the recipe's defaults. ``StagedRecipe`` is itself an
:class:`~lowres_adapt.AdaptationRecipe` (name ``"staged"``), so it serialises with ``to_dict`` /
``AdaptationRecipe.from_dict`` and a :class:`~lowres_adapt.Study` can train it like any recipe.

Example::

    >>> import lowres_adapt as la
    >>> staged = la.StagedRecipe(la.LoRA(r=8), stages=[
    ...     la.Stage("continual", max_steps=200),
    ...     la.Stage("instruct", kind="instruction", data="instructions-ba.jsonl", learning_rate=1e-4),
    ... ])
    >>> la.AdaptationRecipe.from_dict(staged.to_dict()) == staged
    True
    >>> sorted(la.StagedRecipe.variants(la.LoRA(), staged.stages[0], staged.stages[1]))
    ['c', 'c+i', 'i']
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from .._utils import atomic_write_json, did_you_mean, library_versions, refuse_unknown_fields
from ..data.packing import check_packing
from ..modeling import loading
from ..tokenization import check_init
from . import _extension
from .base import AdaptationRecipe, TrainingRun

__all__ = ["Stage", "StagedRecipe", "build_instruction_dataset"]

KINDS = ("causal_lm", "instruction", "vocabulary")
DEFAULT_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"
_VOCABULARY_FIELDS = ("new_tokens", "init", "rows", "equal_bytes")
# Settings a stage may override; None inherits from StagedRecipe.train's keywords.
_STAGE_SETTINGS = ("max_steps", "learning_rate", "batch_size", "block_size", "warmup_steps",
                   "lr_scheduler_type", "weight_decay", "gradient_accumulation_steps")


@dataclass
class Stage:
    """One stage of a :class:`StagedRecipe`: what data it trains on and with which settings.

    Example::

        >>> import lowres_adapt as la
        >>> la.Stage("sft", kind="instruction", data="pairs.jsonl", max_steps=50).to_dict()["kind"]
        'instruction'
    """

    name: str = field(metadata={"help": "Unique name; also the key of this stage's data in train(data=...)."})
    kind: str = field(default="causal_lm", metadata={"help": "'causal_lm' (raw documents, packed), "
                                                             "'instruction' (prompt/response pairs) or "
                                                             "'vocabulary' (extend the vocabulary; first)."})
    data: str | None = field(
        default=None,
        metadata={"help": "Where the stage's data is: a load_corpus source for causal_lm, a JSONL file of "
                          "pairs for instruction. None: train(data={name: ...}) or, for causal_lm, "
                          "train_texts."})
    max_steps: int | None = field(default=None, metadata={"help": "Optimizer steps of this stage."})
    learning_rate: float | None = field(default=None, metadata={"help": "Peak learning rate of this stage."})
    batch_size: int | None = field(default=None, metadata={"help": "Sequences per device per step."})
    block_size: int | None = field(
        default=None, metadata={"help": "Packed block length (causal_lm) or longest example (instruction)."})
    warmup_steps: int | float | None = field(default=None, metadata={"help": "Warmup steps or share."})
    lr_scheduler_type: str | None = field(default=None, metadata={"help": "transformers scheduler name."})
    weight_decay: float | None = field(default=None, metadata={"help": "AdamW weight decay."})
    gradient_accumulation_steps: int | None = field(default=None, metadata={"help": "Micro-batches per step."})
    template: str = field(
        default=DEFAULT_TEMPLATE,
        metadata={"help": "Instruction stages: the prompt part, with a '{prompt}' slot; the response follows "
                          "it directly and ends with EOS. Alpaca style by default."})
    prompt_field: str = field(default="prompt", metadata={"help": "JSON key of the prompt (instruction)."})
    response_field: str = field(default="response", metadata={"help": "JSON key of the response."})
    training_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Other recipe.train keywords for this stage only."})
    new_tokens: int | None = field(
        default=None, metadata={"help": "Vocabulary stages: tokens to add (extend_vocabulary's max_new_tokens)."})
    init: str = field(default="mean", metadata={
        "help": "Vocabulary stages: how the new rows start: 'mean', 'merge', 'covariance' or 'random'."})
    rows: str = field(default="auto", metadata={
        "help": "Vocabulary stages: which embedding rows the later stages train: 'new' (the original rows "
                "frozen, EEVE), 'all', or 'auto' ('new' for adapters, 'all' for full fine-tuning)."})
    equal_bytes: bool = field(default=True, metadata={
        "help": "Vocabulary stages: scale the later causal_lm stages' max_steps by the extended/base token "
                "ratio on their documents, so every arm trains on the same number of text bytes."})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise ValueError(f"Stage.name must be a non-empty name without '/', got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Stage.kind must be one of {KINDS}, got {self.kind!r}{did_you_mean(self.kind, KINDS)}")
        if self.data is not None:
            if isinstance(self.data, os.PathLike):
                self.data = os.fspath(self.data)
            if not isinstance(self.data, str) or not self.data:
                raise ValueError(f"Stage.data must be a path or corpus spec (str) or None, got {type(self.data)!r}; "
                                 "pass in-memory data with StagedRecipe.train(data={stage_name: ...})")
        for name in ("max_steps", "batch_size", "block_size", "gradient_accumulation_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Stage.{name} must be a positive integer or None, got {value!r}")
        if self.learning_rate is not None and not (
                isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"Stage.learning_rate must be a positive number or None, got {self.learning_rate!r}")
        if self.kind == "instruction":
            if "{prompt}" not in self.template:
                raise ValueError(f"Stage.template must contain '{{prompt}}', got {self.template!r}")
            try:
                self.template.format(prompt="")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(f"Stage.template {self.template!r} has a slot other than {{prompt}} ({err}); "
                                 "write literal braces as {{ and }}") from None
        if self.kind == "vocabulary":
            self._check_vocabulary()
        elif self.new_tokens is not None:
            raise ValueError(f"Stage.new_tokens is for kind='vocabulary' stages; stage {self.name!r} is {self.kind!r}")
        if not isinstance(self.training_args, Mapping):
            raise ValueError(f"Stage.training_args must be a dict, got {type(self.training_args).__name__}")
        self.training_args = dict(self.training_args)
        clash = sorted(set(self.training_args) & {"train_texts", "train_dataset", "model", "tokenizer",
                                                   "output_dir", *_STAGE_SETTINGS})
        if clash:
            raise ValueError(f"Stage.training_args must not set {clash}; use the Stage fields / train() for them")

    def _check_vocabulary(self) -> None:
        if isinstance(self.new_tokens, bool) or not isinstance(self.new_tokens, int) or self.new_tokens < 0:
            raise ValueError(f"vocabulary stage {self.name!r} needs new_tokens, an integer >= 0 (0: no extension), "
                             f"got {self.new_tokens!r}")
        check_init(self.init)
        if self.rows not in _extension.ROWS:
            raise ValueError(f"Stage.rows must be one of {_extension.ROWS}, got {self.rows!r}"
                             f"{did_you_mean(str(self.rows), _extension.ROWS)}")
        if self.settings() or self.training_args:
            raise ValueError(f"vocabulary stage {self.name!r} does not train; set {sorted(self.settings())} "
                             "on the stages after it")

    def to_dict(self) -> dict[str, Any]:
        """The stage as a JSON/YAML-friendly dict (``Stage(**d)`` rebuilds it).

        The vocabulary-stage fields are left out of other stages, so their dicts (and the fingerprints of
        studies that hold them) are what they were before vocabulary stages existed.
        """
        out = asdict(self)
        if self.kind != "vocabulary":
            for name in _VOCABULARY_FIELDS:
                out.pop(name)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        """The stage ``to_dict`` described; unknown keys raise ``ValueError`` naming the known ones."""
        refuse_unknown_fields("Stage", data, (f.name for f in fields(cls)))
        return cls(**data)

    def settings(self) -> dict[str, Any]:
        """The training settings this stage sets (those not left ``None``)."""
        return {k: getattr(self, k) for k in _STAGE_SETTINGS if getattr(self, k) is not None}


@dataclass
class StagedRecipe(AdaptationRecipe):
    """A recipe run as a sequence of :class:`Stage` on one model (see the module docstring).

    Example::

        >>> import lowres_adapt as la
        >>> la.StagedRecipe(la.FullFineTuning(), [la.Stage("c"), la.Stage("i", kind="instruction")]).label
        'c+i'
    """

    base: AdaptationRecipe = field(
        default=None, metadata={"help": "The recipe every stage trains with (FullFineTuning, LoRA, QLoRA)."})
    stages: Sequence[Stage] = field(default=(), metadata={"help": "Stages, run in order."})
    label: str | None = field(default=None, metadata={"help": "Short name; default: stage names joined by '+'."})

    name: ClassVar[str] = "staged"

    def __post_init__(self) -> None:
        if isinstance(self.base, Mapping):
            self.base = AdaptationRecipe.from_dict(dict(self.base))
        if not isinstance(self.base, AdaptationRecipe) or isinstance(self.base, StagedRecipe):
            raise ValueError(f"StagedRecipe.base must be a recipe such as la.LoRA(r=8) (not a StagedRecipe), "
                             f"got {self.base!r}")
        if isinstance(self.stages, (Stage, Mapping)):
            self.stages = [self.stages]
        self.stages = tuple(s if isinstance(s, Stage) else Stage.from_dict(s) for s in self.stages)
        if not self.stages:
            raise ValueError("StagedRecipe needs at least one Stage, e.g. stages=[la.Stage('continual')]")
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique, got {dupes} more than once in {names}")
        kinds = [s.kind for s in self.stages]
        if "vocabulary" in kinds[1:] or kinds == ["vocabulary"]:
            raise ValueError(f"a vocabulary stage must be the first stage and have a training stage after it, "
                             f"got stage kinds {kinds}")
        if self.label is None:
            self.label = "+".join(names)

    # ------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """``{"recipe": "staged", "base": {...}, "stages": [...], "label": ...}`` (JSON/YAML friendly).

        Example::

            >>> import lowres_adapt as la
            >>> la.StagedRecipe(la.LoRA(r=4), [la.Stage("c")]).to_dict()["base"]["recipe"]
            'lora'
        """
        return {"recipe": self.name, "base": self.base.to_dict(), "stages": [s.to_dict() for s in self.stages],
                "label": self.label}

    @classmethod
    def variants(cls, recipe: AdaptationRecipe, continual: Stage, instruction: Stage) -> dict[str, StagedRecipe]:
        """``{"c": ..., "c+i": ..., "i": ...}``: LlamaTurk's comparison as three staged recipes.

        "c" is continual training only, "c+i" continual then instruction tuning, "i" instruction tuning
        only; each starts from the same base model.

        Example::

            >>> import lowres_adapt as la
            >>> v = la.StagedRecipe.variants(la.LoRA(), la.Stage("c"), la.Stage("i", kind="instruction"))
            >>> [s.name for s in v["c+i"].stages], v["i"].label
            (['c', 'i'], 'i')
        """
        if continual.kind != "causal_lm" or instruction.kind != "instruction":
            raise ValueError(f"variants needs a causal_lm stage then an instruction stage, got kinds "
                             f"{continual.kind!r} and {instruction.kind!r}")
        return {"c": cls(recipe, [continual], label="c"),
                "c+i": cls(recipe, [continual, instruction], label="c+i"),
                "i": cls(recipe, [instruction], label="i")}

    # ------------------------------------------------------------------------------ the base recipe decides
    @property
    def _adapters(self) -> bool:  # type: ignore[override]
        return self.base._adapters

    def _quantization(self):
        return self.base._quantization()

    def _default_checkpointing(self) -> bool:
        return self.base._default_checkpointing()

    def _adapt(self, model, *, gradient_checkpointing: bool = False, for_counting: bool = False):
        return self.base._adapt(model, gradient_checkpointing=gradient_checkpointing, for_counting=for_counting)

    def prepare(self, model, tokenizer=None, **kwargs):
        """``(model, tokenizer)`` prepared by the base recipe (see ``AdaptationRecipe.prepare``)."""
        return self.base.prepare(model, tokenizer, **kwargs)

    # ------------------------------------------------------------------------------ training
    def train(self, model, train_texts: Sequence[str] | None = None, eval_texts: Sequence[str] | None = None, *,
              tokenizer=None, data: Mapping[str, Any] | None = None, output_dir: str | Path | None = None,
              seed: int = 0, merge_adapter: bool = False, **kwargs: Any) -> TrainingRun:
        """A ``TrainingRun`` after every stage ran in order on one model.

        ``train_texts`` feed ``causal_lm`` stages that name no data; ``data={stage_name: ...}`` gives a
        stage its data in memory (documents for ``causal_lm``; dicts with the prompt/response fields, or
        ``(prompt, response)`` pairs, or a JSONL path for ``instruction``). ``eval_texts`` are evaluated
        after every stage. Other keywords are ``recipe.train``'s (``max_steps``, ``block_size``,
        ``batch_size``, ``learning_rate``, ...) and apply to every stage that does not set its own.

        Files: ``output_dir/stages/<i>-<name>/`` holds each earlier stage's output; the last stage writes
        to ``output_dir`` itself, whose ``metrics.json`` holds the run's metrics plus ``stages`` (each
        stage's own metrics) and ``recipe.json`` this staged recipe. ``run.metrics`` sums ``train_tokens``,
        ``train_seconds`` and ``wall_seconds`` over stages and takes the losses of the last stage.

        Example::

            >>> import tempfile, lowres_adapt as la
            >>> docs = la.sample_corpus("ba")
            >>> path = la.save_tiny_checkpoint(tempfile.mkdtemp(), "gpt2", docs, vocab_size=300,
            ...                                hidden_size=32, num_heads=2, max_positions=64)
            >>> staged = la.StagedRecipe(la.LoRA(r=4), [la.Stage("c"), la.Stage("i", kind="instruction")])
            >>> run = staged.train(path, docs, data={"i": [("Сәләм!", "Сәләм, дуҫым.")] * 8},
            ...                    max_steps=2, block_size=32, batch_size=2)  # doctest: +SKIP
            >>> [s["stage"] for s in run.metrics["stages"]]  # doctest: +SKIP
            ['c', 'i']
        """
        wall_start = time.perf_counter()
        data = dict(data or {})
        unknown = sorted(set(data) - {s.name for s in self.stages})
        if unknown:
            names = [s.name for s in self.stages]
            raise ValueError(f"data names stages {unknown} that this recipe does not have; its stages: {names}")
        for key in ("train_dataset", "eval_dataset"):
            if key in kwargs:
                raise ValueError(f"{key} is per stage in a StagedRecipe: give data={{stage_name: ...}} instead")
        if merge_adapter and not self.base._adapters:
            raise ValueError(f"merge_adapter=True needs an adapter recipe (LoRA/QLoRA), not "
                             f"{type(self.base).__name__}")
        loaded = not isinstance(model, (str, os.PathLike))
        if merge_adapter and self.base._quantize() and (len(self.stages) > 1 or loaded):
            # QLoRA merges by reloading the base from its folder; a later stage only has the loaded 4-bit model.
            raise ValueError("merge_adapter=True with QLoRA needs the base model's folder, which stages after the "
                             "first no longer have: train without it, then merge the saved adapter with "
                             "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "
                             "output_dir).merge_and_unload()")
        if output_dir is None:
            import tempfile

            output_dir = tempfile.mkdtemp(prefix="lowres-adapt-staged-")
        output_dir = Path(output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            raise ValueError(f"output_dir {str(output_dir)!r} is a file; pass a folder")

        # Everything that can fail on bad input is checked before the first stage trains: a bad last
        # stage must not surface only after the earlier stages spent their compute. The checks are the
        # recipe's own (same model resolution, same default block_size), so a stage that passes here
        # does not fail recipe.train's checks later.
        resolved = loading.resolve_model(model, tokenizer)  # loads the tokenizer and config, no weights
        tok, context = resolved.tokenizer, loading.context_length(resolved.config)
        default_block = inspect.signature(self.base.train).parameters["block_size"].default
        plans, pairs_of = [], {}
        for stage in self.stages:
            settings = {**kwargs, **stage.training_args, **stage.settings()}
            if "packing" in settings:
                check_packing(settings["packing"])
            block_size = settings.get("block_size", default_block)
            if context is not None and block_size > context:
                given = "" if "block_size" in settings else " (the recipe's default: none was given)"
                raise ValueError(f"stage {stage.name!r}: block_size={block_size}{given} is larger than the model's "
                                 f"context of {context} tokens; pass block_size <= {context} to train() or the Stage")
            source = data.get(stage.name, stage.data)
            if stage.kind == "vocabulary":
                check_init(stage.init, tok)  # "merge" on a tokenizer without merges fails before any loading
                texts = _load_texts(train_texts if source is None else source, stage.name)
                plans.append((stage, settings, {"texts": texts}))
            elif stage.kind == "causal_lm":
                if source is None:
                    source = train_texts
                if source is None:
                    raise ValueError(f"stage {stage.name!r} has no documents: set Stage(data=...), pass "
                                     f"data={{{stage.name!r}: [...]}} or train_texts")
                texts = _load_texts(source, stage.name)
                plans.append((stage, settings, {"train_texts": texts}))
            else:
                if source is None:
                    raise ValueError(f"instruction stage {stage.name!r} has no pairs: set Stage(data='pairs.jsonl') "
                                     f"or pass data={{{stage.name!r}: [{{'prompt': ..., 'response': ...}}, ...]}}")
                pairs = _load_pairs(source, stage)
                dataset = build_instruction_dataset(tok, pairs, template=stage.template, max_length=block_size)
                plans.append((stage, settings, {"train_dataset": dataset}))
                pairs_of[stage.name] = (pairs, block_size)

        current, stage_metrics, history, run, recipe = model, [], [], None, self.base
        default_steps = inspect.signature(self.base.train).parameters["max_steps"].default
        for i, (stage, settings, stage_data) in enumerate(plans, 1):
            last = i == len(plans)
            stage_dir = output_dir if last else output_dir / "stages" / f"{i}-{stage.name}"
            if stage.kind == "vocabulary":
                base_tok = tok
                current, tok, recipe, vocab = _extension.extend(stage, current, tok, recipe, stage_data["texts"],
                                                                stage_dir, seed)
                if stage.equal_bytes:  # equal cost is equal text bytes: fewer tokens, fewer steps
                    for later_stage, later, later_data in plans[i:]:
                        if later_stage.kind == "causal_lm" and vocab["added"]:
                            ratio = _extension.token_ratio(base_tok, tok, later_data["train_texts"])
                            steps = later.get("max_steps", default_steps)
                            later["max_steps"] = max(1, round(steps * ratio))
                            vocab.setdefault("scaled_max_steps", {})[later_stage.name] = {
                                "before": steps, "after": later["max_steps"], "token_ratio": ratio}
                for later_stage, _, later_data in plans[i:]:  # instruction examples in the extended tokens
                    if later_stage.kind == "instruction":
                        pairs, max_length = pairs_of[later_stage.name]
                        later_data["train_dataset"] = build_instruction_dataset(
                            tok, pairs, template=later_stage.template, max_length=max_length)
                stage_metrics.append(vocab)
                continue
            run = recipe.train(current, eval_texts=eval_texts, tokenizer=tok, output_dir=stage_dir, seed=seed,
                               merge_adapter=merge_adapter and last, **settings, **stage_data)
            current, tok = run.model, run.tokenizer
            history.extend({**h, "stage": stage.name} for h in run.log_history)
            stage_metrics.append({"stage": stage.name, "kind": stage.kind, "output_dir": str(stage_dir),
                                  **run.metrics})
        metrics = dict(run.metrics)
        for key in ("train_tokens", "train_seconds"):
            metrics[key] = sum(m.get(key) or 0 for m in stage_metrics)
        metrics["tokens_per_second"] = (metrics["train_tokens"] / metrics["train_seconds"]
                                        if metrics["train_seconds"] else None)
        peaks = [m.get("peak_memory_bytes") for m in stage_metrics if m.get("peak_memory_bytes") is not None]
        metrics["peak_memory_bytes"] = max(peaks) if peaks else None
        metrics["max_steps"] = sum(m.get("max_steps") or 0 for m in stage_metrics)
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        metrics["recipe"] = self.to_dict()
        metrics["library_versions"] = library_versions()
        metrics["stages"] = stage_metrics
        atomic_write_json(output_dir / "recipe.json", self.to_dict())
        atomic_write_json(output_dir / "metrics.json", metrics)
        return TrainingRun(model=run.model, tokenizer=run.tokenizer, metrics=metrics, output_dir=output_dir,
                           recipe=self, log_history=history)


def build_instruction_dataset(tokenizer, pairs: Sequence[Any], *, template: str = DEFAULT_TEMPLATE,
                              max_length: int | None = None) -> list[dict[str, list[int]]]:
    """Examples ``{"input_ids", "labels"}`` for instruction tuning, with ``labels`` -100 on the prompt.

    Each pair is ``(prompt, response)`` or a dict with ``prompt``/``response``. The sequence is
    ``[BOS or EOS] + template.format(prompt=...) + response + [EOS]``; only the response tokens and the
    closing EOS are scored. The prompt and the response are tokenized separately so the boundary is exact.
    Sequences longer than ``max_length`` are cut on the right; examples left with nothing to score are
    dropped.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["Сәләм! Сәләм, дуҫым."] * 20, vocab_size=280)
        >>> ex = la.recipes.build_instruction_dataset(tok, [("Сәләм!", "Сәләм.")], template="{prompt}\\n")[0]
        >>> tok.decode([t for t, l in zip(ex["input_ids"], ex["labels"]) if l != -100])
        'Сәләм.<|endoftext|>'
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("instruction tuning needs a tokenizer with an EOS token to end each response")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    examples = []
    for n, pair in enumerate(pairs):
        prompt, response = _pair(pair, n)
        p_ids = tokenizer(template.format(prompt=prompt), add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [eos]
        ids = [start] + p_ids + r_ids
        labels = [-100] * (1 + len(p_ids)) + r_ids
        if max_length is not None:
            ids, labels = ids[:max_length], labels[:max_length]
        if all(x == -100 for x in labels):
            continue  # the prompt alone fills max_length: nothing to learn from
        examples.append({"input_ids": ids, "labels": labels})
    if not examples:
        raise ValueError(f"no instruction example keeps a response token within max_length={max_length}; "
                         "raise block_size or shorten the prompts")
    return examples


# --- helpers -----------------------------------------------------------------------------------------


def _pair(pair: Any, n: int, prompt_field: str = "prompt", response_field: str = "response") -> tuple[str, str]:
    if isinstance(pair, Mapping):
        if prompt_field not in pair or response_field not in pair:
            raise ValueError(f"instruction example {n} has keys {sorted(pair)}; it needs {prompt_field!r} and "
                             f"{response_field!r} (set Stage(prompt_field=..., response_field=...))")
        prompt, response = pair[prompt_field], pair[response_field]
    elif isinstance(pair, (tuple, list)) and len(pair) == 2:
        prompt, response = pair
    else:
        raise ValueError(f"instruction example {n} must be a (prompt, response) pair or a dict, got {pair!r}")
    if not isinstance(prompt, str) or not isinstance(response, str) or not response:
        raise ValueError(f"instruction example {n}: prompt and response must be strings, response non-empty")
    return prompt, response


def _load_pairs(source: Any, stage: Stage) -> list[tuple[str, str]]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"instruction data {str(path)!r} of stage {stage.name!r} does not exist; "
                                    f'pass a JSONL file with {{"{stage.prompt_field}", "{stage.response_field}"}} lines')
        from ..data import iter_jsonl_records

        source = [record for _, record in iter_jsonl_records(path)]
    if isinstance(source, (str, bytes)) or not isinstance(source, Sequence) or not source:
        raise ValueError(f"instruction stage {stage.name!r} needs a non-empty list of pairs or a JSONL path")
    return [_pair(p, n, stage.prompt_field, stage.response_field) for n, p in enumerate(source)]


def _load_texts(source: Any, stage_name: str) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        from ..data import load_corpus

        return load_corpus(source)
    if isinstance(source, Sequence) and all(isinstance(t, str) for t in source):
        return list(source)
    raise ValueError(f"stage {stage_name!r}: documents must be a list of strings or a load_corpus source, "
                     f"got {type(source).__name__}")


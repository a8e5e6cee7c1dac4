"""``AdaptationRecipe``: what every recipe shares (serialisation, loading, training, run metrics).

A recipe is data: a small validated dataclass that says *how* a pretrained model is adapted (which
weights train, whether the base is quantized). ``prepare`` turns a model into a trainable one,
``train`` runs ``transformers.Trainer`` on packed text and returns a ``TrainingRun``. Subclasses only
say how the loaded model is adapted (``_adapt``) and how it is loaded (``_quantize``); everything else
lives here and in the shared helper modules (``_loading``: model sources and loading; ``_targets``:
LoRA target modules; ``_packing``: training data; ``_trainer``: the Trainer and run metrics) so the
three recipes cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from .._utils import atomic_write_json, did_you_mean, library_versions, refuse_unknown_fields
from ..data import pack_corpus
from ..data import packing as data_packing
from ..modeling import loading
from . import _step_memory, _trainer

logger = logging.getLogger(__name__)

# Field metadata key: leave the field out of ``to_dict`` while it has its default value.
OMIT_IF_DEFAULT = "omit_if_default"

# name -> recipe class; filled by ``AdaptationRecipe.__init_subclass__``.
_REGISTRY: dict[str, type[AdaptationRecipe]] = {}


def _registered(name: str):
    # every recipe module is imported by ``lowres_adapt.recipes``, which runs before this module is used
    return _REGISTRY.get(name)


def _known() -> list[str]:
    return sorted(_REGISTRY)


@dataclass
class AdaptationRecipe:
    """Base class of the adaptation recipes: ``FullFineTuning``, ``LoRA`` (with its variants), ``QLoRA``.

    Example::

        >>> import lowres_adapt as la
        >>> recipe = la.LoRA(r=8)
        >>> la.AdaptationRecipe.from_dict(recipe.to_dict()) == recipe
        True
    """

    name: ClassVar[str] = ""
    # Learning rate used when ``train`` gets none: adapters tolerate (and need) a larger one.
    default_learning_rate: ClassVar[float] = 1e-4

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            _REGISTRY[cls.name] = cls

    # ------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON/YAML-friendly dict: ``{"recipe": name, **fields}`` (tuples become lists).

        Example::

            >>> import lowres_adapt as la
            >>> la.FullFineTuning().to_dict()
            {'recipe': 'full', 'frozen_modules': []}
        """
        out: dict[str, Any] = {"recipe": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get(OMIT_IF_DEFAULT) and value == f.default:
                continue  # a field added later: left out at its default, so earlier dicts and fingerprints hold
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptationRecipe:
        """Returns the recipe that ``to_dict`` described; unknown recipe names or keys raise ``ValueError``.

        Example::

            >>> import lowres_adapt as la
            >>> la.AdaptationRecipe.from_dict({"recipe": "lora", "r": 4, "variant": "dora"}).variant
            'dora'
        """
        if not isinstance(data, dict):
            raise TypeError(f"from_dict needs a dict, got {type(data).__name__}")
        data = dict(data)
        name = data.pop("recipe", None)
        if name is None:
            if cls is AdaptationRecipe:
                raise ValueError(f"the dict has no 'recipe' key; add one of {_known()}")
            target = cls
        else:
            target = _registered(str(name).lower())
            if target is None:
                raise ValueError(
                    f"unknown recipe {name!r}{did_you_mean(name, _known())}; known recipes: {_known()}"
                )
            if cls is not AdaptationRecipe and not issubclass(target, cls):
                raise ValueError(f"{cls.__name__}.from_dict got a {target.__name__} dict (recipe={name!r})")
        refuse_unknown_fields(target.__name__, data, (f.name for f in fields(target)))
        return target(**data)

    def copy(self, **changes: Any) -> AdaptationRecipe:
        """Returns a copy with ``changes`` applied (validated again).

        Example::

            >>> import lowres_adapt as la
            >>> la.LoRA(r=8).copy(r=16).r
            16
        """
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------ what subclasses define
    # Whether the recipe trains adapters on a frozen base (decides the default base dtype on GPU).
    _adapters: ClassVar[bool] = False

    def _quantization(self) -> dict[str, Any] | None:
        """bitsandbytes 4-bit settings when the base is loaded quantized (QLoRA), else None."""
        return None

    def _quantize(self) -> bool:
        return self._quantization() is not None

    def _default_checkpointing(self) -> bool:
        """Gradient checkpointing when ``train`` is not told: on for QLoRA (memory is the point)."""
        return self._quantize()

    def _adapt(self, model, *, gradient_checkpointing: bool = False, for_counting: bool = False):
        """Returns the model with this recipe's trainable weights set up (subclasses implement it)."""
        raise NotImplementedError

    def _check_source(self, source: loading.ModelSource) -> None:
        """Raises before any weights load when the recipe cannot train ``source`` as asked (LoRA: an adapter
        made with other settings)."""

    def _check_train(self, weight_decay: float) -> None:
        """Raises ``ValueError`` for training options this recipe cannot honour (checked before any loading)."""

    def _optimizer(self, model, learning_rate: float, weight_decay: float):
        """An optimizer instance when the recipe needs its own (LoRA+), else ``None`` (Trainer's AdamW)."""
        return None

    def _save(self, trainer, output_dir: Path, state: dict[str, Any]) -> None:
        """Writes the trained weights (adapter or full model) and the tokenizer to ``output_dir``."""
        trainer.save_model(str(output_dir))

    # ------------------------------------------------------------------------------ public work
    def prepare(self, model, tokenizer=None, *, dtype: str | None = None, gradient_checkpointing: bool | None = None,
                model_kwargs: dict[str, Any] | None = None):
        """Returns ``(model, tokenizer)``: the model adapted by this recipe, ready to train.

        ``model`` is a local folder or hub id (the tokenizer is loaded from it), a folder holding a PEFT
        adapter saved by an earlier run (its base is loaded and the adapter continues training), or an
        already-loaded ``PreTrainedModel``/``PeftModel`` (then ``tokenizer=`` is required; a ``PeftModel``
        keeps training its active adapter). ``dtype``: ``"float32"``, ``"bfloat16"``, ``"float16"`` or
        ``None`` for the library's policy (``base_load()``: fp32 on CPU; on a GPU a bf16/fp16 base for
        adapters, fp32 master weights for full fine-tuning, NF4 for QLoRA). ``model_kwargs`` pass through
        to ``from_pretrained`` (``revision``, ``attn_implementation``, ``device_map``,
        ``low_cpu_mem_usage``, ``trust_remote_code``; see ``lowres_adapt.modeling.MODEL_KWARGS``).

        Example::

            >>> import tempfile, lowres_adapt as la
            >>> path = la.save_tiny_checkpoint(tempfile.mkdtemp(), "llama", la.sample_corpus("ba"),
            ...                                vocab_size=300, hidden_size=32, num_heads=2)
            >>> model, tok = la.LoRA(r=4).prepare(path)
            >>> la.LoRA(r=4).count_parameters(model)["trainable"]
            2048
        """
        source = loading.resolve_model(model, tokenizer, model_kwargs=model_kwargs)
        self._check_source(source)
        if self._quantize():
            loading.require_4bit(source)
        self.check_architecture(source.config)
        if gradient_checkpointing is None:
            gradient_checkpointing = self._default_checkpointing()
        return self._prepare(source, dtype=dtype, gradient_checkpointing=gradient_checkpointing)

    def base_load(self, dtype: str | None = None) -> str:
        """Returns how this recipe loads its base on this machine: ``"fp32"``, ``"bf16"``, ``"fp16"``,
        ``"nf4"`` (or ``"fp4"``), the library's one policy (``lowres_adapt.modeling.default_base_load``) unless
        ``dtype`` names a float dtype.

        Example::

            >>> import lowres_adapt as la
            >>> la.QLoRA(r=8).base_load(), la.FullFineTuning().base_load("bfloat16")
            ('nf4', 'bf16')
        """
        from ..modeling import default_base_load

        quantization = self._quantization()
        if quantization is not None:
            return quantization["quant_type"]
        if dtype is not None:
            return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
        return default_base_load(quantize=False, adapters=self._adapters)

    def check_architecture(self, config) -> None:
        """Raises (with the recipe's own message naming the fix) if this recipe cannot adapt a model of
        ``config``: target modules it does not have, layers a variant cannot wrap. Builds the model on the
        meta device from the config alone, so a mistake on a 7B model fails in seconds, before any corpus
        is tokenized or weight loaded.

        Example::

            >>> import transformers, lowres_adapt as la
            >>> cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)
            >>> la.LoRA(target_modules=["q_proj"]).check_architecture(cfg)
            Traceback (most recent call last):
            ...
            ValueError: target_modules ['q_proj'] ...
        """
        self._adapt(meta_model(config), for_counting=True)

    def _prepare(self, source: loading.ModelSource, *, dtype: str | None, gradient_checkpointing: bool):
        loaded = loading.load_model(source, quantization=self._quantization(), dtype=dtype, adapters=self._adapters)
        model = self._adapt(loaded, gradient_checkpointing=gradient_checkpointing)
        return model, source.tokenizer

    def count_parameters(self, model) -> dict[str, int]:
        """Returns ``{"trainable": int, "total": int}`` counted as PEFT does (4-bit weights unpacked).

        Example::

            >>> import lowres_adapt as la
            >>> m = la.build_tiny_model("gpt2", vocab_size=100, hidden_size=16, num_heads=2, num_layers=1)
            >>> la.FullFineTuning().count_parameters(m)
            {'trainable': 9008, 'total': 9008}
        """
        return _trainer.count_parameters(model)

    def train(
        self,
        model,
        train_texts: Sequence[str] | None = None,
        eval_texts: Sequence[str] | None = None,
        *,
        tokenizer=None,
        output_dir: str | Path | None = None,
        seed: int = 0,
        max_steps: int = 100,
        block_size: int = 256,
        batch_size: int = 8,
        learning_rate: float | None = None,
        gradient_accumulation_steps: int = 1,
        warmup_steps: int | float = 0,
        lr_scheduler_type: str = "cosine",
        weight_decay: float = 0.0,
        max_grad_norm: float = 1.0,
        gradient_checkpointing: bool | None = None,
        bf16: bool | None = None,
        dtype: str | None = None,
        eval_batch_size: int | None = None,
        train_dataset=None,
        eval_dataset=None,
        eval_steps: int | None = None,
        eval_before_training: bool = False,
        save_steps: int | None = None,
        save_total_limit: int | None = None,
        logging_steps: int = 10,
        resume_from_checkpoint: str | bool | None = None,
        merge_adapter: bool = False,
        report_to: str | list[str] = "none",
        callbacks: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
        packing: str = "isolated",
        data_cache: str | Path | None = None,
        **training_args: Any,
    ) -> TrainingRun:
        """Returns a ``TrainingRun`` (model, tokenizer, metrics, output_dir, recipe) after training with
        ``transformers.Trainer``.

        Data (give texts or datasets):

        - ``train_texts`` / ``eval_texts``: documents, or a corpus source (a ``.txt``/``.jsonl`` file, a
          folder, an ``hf:`` spec) read as a stream into memory-mapped Arrow files, never held as a list
          (corpora larger than memory). ``data_cache``: a folder keeping the packed blocks per tokenizer,
          block size and corpus, read back by later runs (``metrics["tokenized_from_cache"]``,
          ``metrics["data_seconds"]``). Documents are tokenized (``datasets.map``, batched),
          joined with EOS and packed into ``block_size`` blocks (no padding; the leftover under one block
          per 10,000 documents is dropped and ``metrics["packing_efficiency"]`` says how much was kept).
          ``packing="isolated"`` (default): each document starts with BOS (EOS where the tokenizer has no
          BOS), the token the evaluator conditions on, and attends only to itself (position ids restart
          per document; no label is predicted across a boundary). Where the model cannot keep packed
          documents apart (checked on the loaded model) a warning says so and training falls back to
          ``"concatenated"``: documents joined with EOS, attention across them, as in GPT-2 style
          pretraining and in releases before this default. ``metrics["packing"]`` says which ran.
        - ``train_dataset`` / ``eval_dataset``: a ``datasets.Dataset`` or list of dicts with
          ``input_ids`` and optionally ``labels`` (-100 for positions that are not scored) and
          ``attention_mask``. Used as they are (no packing); batches are right-padded, labels with -100.

        Model: a folder, hub id, adapter folder, ``sample:`` name, or loaded model (then ``tokenizer=``);
        see ``prepare`` (``dtype``, ``model_kwargs``). ``metrics["base_load"]`` records how the base was
        loaded (``"fp32"``, ``"bf16"``, ``"fp16"``, ``"nf4"``) and ``metrics["model_kwargs"]`` the options
        passed through (``trust_remote_code`` included, when it was on).
        A ``PeftModel`` that already has an adapter continues training that adapter (staged training).

        Training: ``max_steps`` optimizer steps of ``batch_size`` x ``gradient_accumulation_steps``
        sequences per device; ``learning_rate`` defaults to the recipe's (2e-4 for adapters, 5e-5 full);
        ``warmup_steps`` (an int, or a float in [0, 1) for a share of ``max_steps``), ``lr_scheduler_type``,
        ``weight_decay``, ``max_grad_norm``; ``gradient_checkpointing`` (non-reentrant; default on for
        QLoRA only); ``bf16`` (default: on where a CUDA GPU supports it). Seeded end to end: the same
        ``seed`` gives the same data order, adapter init, dropout and final loss on CPU.

        Output: ``output_dir`` (default: a new temporary folder) receives the adapter (PEFT format) or
        the full model, the tokenizer, ``recipe.json`` and ``metrics.json``; with ``save_steps`` also
        ``checkpoint-N`` folders, which ``resume_from_checkpoint`` (a path, or ``True`` for the latest)
        continues from. ``merge_adapter=True`` also writes the adapter merged into a full-precision base
        under ``output_dir/merged`` and returns that merged model.

        A NaN or infinite training loss raises ``TrainingDivergedError`` naming the step and the last
        good checkpoint. Bad input (block larger than the model's context, a corpus shorter than one
        block, a missing model path, QLoRA where bitsandbytes cannot quantize) raises before training.
        ``report_to`` goes to ``TrainingArguments`` (``"none"`` by default), as does any other keyword
        (``**training_args``, e.g. ``optim="adamw_torch"``, ``dataloader_num_workers=2``).

        Example::

            >>> import tempfile, lowres_adapt as la
            >>> docs = la.sample_corpus("ba")
            >>> path = la.save_tiny_checkpoint(tempfile.mkdtemp(), "gpt2", docs, vocab_size=300,
            ...                                hidden_size=32, num_heads=2, max_positions=64)
            >>> run = la.LoRA(r=4).train(path, docs, docs[:2], max_steps=2, block_size=32,
            ...                          batch_size=2, output_dir=tempfile.mkdtemp())  # doctest: +SKIP
            >>> sorted(p.name for p in run.output_dir.iterdir())[:3]  # doctest: +SKIP
            ['adapter_config.json', 'adapter_model.safetensors', 'metrics.json']
        """
        wall_start = time.perf_counter()
        learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        opts = _trainer.TrainOptions(
            seed=seed, max_steps=max_steps, block_size=block_size, batch_size=batch_size,
            learning_rate=learning_rate, gradient_accumulation_steps=gradient_accumulation_steps,
            warmup_steps=warmup_steps, lr_scheduler_type=lr_scheduler_type, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, bf16=bf16, eval_batch_size=eval_batch_size, eval_steps=eval_steps,
            save_steps=save_steps, save_total_limit=save_total_limit, logging_steps=logging_steps,
            report_to=report_to, extra=training_args,
        )
        self._check_train(weight_decay)
        if gradient_checkpointing is None:
            gradient_checkpointing = self._default_checkpointing()
        if (train_texts is None) == (train_dataset is None):
            raise ValueError("give exactly one of train_texts (documents to pack) or train_dataset "
                             "(pre-tokenized examples with input_ids)")
        if eval_texts is not None and eval_dataset is not None:
            raise ValueError("give eval_texts or eval_dataset, not both")
        data_packing.check_packing(packing)
        if merge_adapter and not hasattr(self, "r"):
            raise ValueError(f"merge_adapter=True needs an adapter recipe (LoRA/QLoRA), not {type(self).__name__}")

        # Everything that can fail on bad input happens before any weights load or training starts.
        source = loading.resolve_model(model, tokenizer, model_kwargs=model_kwargs)
        self._check_source(source)
        loading.check_block_size(source.config, block_size)
        if self._quantize():
            loading.require_4bit(source)
            if merge_adapter and source.path is None:
                raise ValueError("merge_adapter=True with QLoRA reloads the base in full precision to merge "
                                 "into: pass the model's folder or hub id rather than a loaded model")
        if not source.has_adapter:
            self.check_architecture(source.config)  # on the meta device: before tokenizing or loading
        output_dir = _trainer.make_output_dir(output_dir)
        tok = source.tokenizer
        context = loading.context_length(source.config)
        data_stats: dict[str, Any] = {"tokenized_from_cache": None, "data_seconds": 0.0}
        if train_dataset is not None:
            train_ds, train_stats = data_packing.as_dataset(train_dataset, "train_dataset", context), None
        else:  # a list, or a corpus source streamed into Arrow files; from data_cache when it holds the blocks
            train_ds, train_stats = pack_corpus(tok, train_texts, block_size, "train_texts", cache_dir=data_cache,
                                                packing=packing)
            data_stats = {"tokenized_from_cache": train_stats["tokenized_from_cache"],
                          "data_seconds": train_stats["data_seconds"]}
        eval_ds = eval_stats = None
        if eval_dataset is not None:
            eval_ds = data_packing.as_dataset(eval_dataset, "eval_dataset", context)
        elif eval_texts is not None:
            eval_ds, eval_stats = pack_corpus(tok, eval_texts, block_size, "eval_texts", cache_dir=data_cache,
                                              packing=packing)
            data_stats["data_seconds"] += eval_stats["data_seconds"]
        _trainer.check_resume(resume_from_checkpoint, output_dir)

        _trainer.seed_everything(seed)  # before adapter init: LoRA's A matrices are random
        model, tok = self._prepare(source, dtype=dtype, gradient_checkpointing=gradient_checkpointing)
        state: dict[str, Any] = {"source": source, "dtype": dtype}
        if getattr(self, "variant", None) == "pissa" and not source.has_adapter:
            state["pissa_init"] = _trainer.save_pissa_init(model, output_dir)
        used = packing if (train_stats or eval_stats) else None  # None: nothing was packed
        fallback = None
        if used == "isolated":
            fallback = _trainer.isolation_failure(model)
            if fallback is not None:  # never train contaminated without saying so
                _warn(f"{fallback}: packed documents cannot be kept apart, so this run trains with "
                      "packing='concatenated' (documents joined with EOS, attention across them); load the "
                      "model with attn_implementation='sdpa' or 'eager' and pass it as model=..., or pass "
                      "packing='concatenated' to silence this")
                used = "concatenated"
                if train_dataset is None:  # (from the cache when an earlier run packed them so)
                    train_ds, train_stats = pack_corpus(tok, train_texts, block_size, "train_texts",
                                                        cache_dir=data_cache, packing=used)
                if eval_texts is not None and eval_dataset is None:
                    eval_ds, eval_stats = pack_corpus(tok, eval_texts, block_size, "eval_texts",
                                                      cache_dir=data_cache, packing=used)
        start_id = data_packing.document_start_id(tok) if used == "isolated" else None
        optimizer = self._optimizer(model, learning_rate, weight_decay)
        # tensor memory at the peak of one steady optimizer step (the second; the first if there is one),
        # the number a memory plan predicts (see recipes/_step_memory.py)
        step_memory = _step_memory.step_memory_callback(1 if max_steps > 1 else 0)
        trainer = _trainer.build_trainer(
            model, tok, train_ds, eval_ds, opts, output_dir, optimizer=optimizer,
            callbacks=[*callbacks, step_memory], packing=used if train_stats is not None else None,
            start_id=start_id,
        )
        counts = self.count_parameters(model)
        _trainer.reset_peak_memory()

        before = trainer.evaluate()["eval_loss"] if (eval_before_training and eval_ds is not None) else None
        result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        evaluation = trainer.evaluate() if eval_ds is not None else {}
        peak_bytes, peak_kind = _trainer.peak_memory()
        step_peak = step_memory.result or {}
        if peak_kind == "cuda_max_allocated":  # the step measurement reset CUDA's peak: put back what came before
            peak_bytes = max(peak_bytes, step_peak.get("peak_before", 0))

        self._save(trainer, output_dir, state)
        final_model = trainer.model
        if merge_adapter:
            final_model = self._merge(trainer, output_dir, state)

        train_tokens = int(trainer.state.num_input_tokens_seen)
        train_seconds = float(result.metrics.get("train_runtime", float("nan")))
        eval_loss = evaluation.get("eval_loss")
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        metrics = {
            "train_loss": float(result.training_loss),
            "final_train_loss": float(losses[-1]) if losses else float(result.training_loss),
            "eval_loss": None if eval_loss is None else float(eval_loss),
            "eval_perplexity": None if eval_loss is None else _safe_exp(eval_loss),
            "eval_loss_before": None if before is None else float(before),
            "eval_perplexity_before": None if before is None else _safe_exp(before),
            "trainable_params": counts["trainable"],
            "total_params": counts["total"],
            "trainable_share": counts["trainable"] / counts["total"] if counts["total"] else 0.0,
            "train_tokens": train_tokens,
            "tokens_per_second": train_tokens / train_seconds if train_seconds > 0 else None,
            "train_seconds": train_seconds,
            "wall_seconds": time.perf_counter() - wall_start,
            "peak_memory_bytes": peak_bytes,
            "peak_memory_kind": peak_kind,
            "step_peak_memory_bytes": step_peak.get("bytes"),
            "step_peak_memory_kind": step_peak.get("kind"),
            "dtype": dtype or (loading.default_dtype(self._quantize(), self._adapters) if source.model is None
                               else str(next(model.parameters()).dtype).removeprefix("torch.")),
            "base_load": loading.base_load_of(model),
            "model_kwargs": {k: v for k, v in source.options.items() if k != "token"},  # never a secret
            "optimizer": "custom" if optimizer is not None else str(getattr(trainer.args.optim, "value",
                                                                            trainer.args.optim)),
            "weight_bytes": _trainer.weight_bytes(model),
            "packing": used,
            "packing_fallback": fallback,
            "document_start_id": start_id,
            "packing_efficiency": None if train_stats is None else train_stats["packing_efficiency"],
            "train_blocks": len(train_ds),
            "eval_blocks": None if eval_ds is None else len(eval_ds),
            "eval_packing_efficiency": None if eval_stats is None else eval_stats["packing_efficiency"],
            **data_stats,
            "seed": seed,
            "max_steps": max_steps,
            "global_step": int(trainer.state.global_step),
            "block_size": block_size,
            "batch_size": batch_size,
            "gradient_accumulation_steps": gradient_accumulation_steps,
            "world_size": int(trainer.args.world_size),
            "learning_rate": learning_rate,
            "gradient_checkpointing": bool(gradient_checkpointing),
            "bf16": bool(trainer.args.bf16),
            "device": str(trainer.args.device),
            "model": source.name,
            "library_versions": library_versions(),
            "recipe": self.to_dict(),
        }
        if trainer.is_world_process_zero():
            atomic_write_json(output_dir / "recipe.json", self.to_dict())
            atomic_write_json(output_dir / "metrics.json", metrics)
        return TrainingRun(model=final_model, tokenizer=tok, metrics=metrics, output_dir=output_dir,
                           recipe=self, log_history=list(trainer.state.log_history))

    def _merge(self, trainer, output_dir: Path, state: dict[str, Any]):
        raise NotImplementedError  # only adapter recipes merge; train() checks before training


def meta_model(config):
    """The model of ``config`` on the meta device (no memory, no weights), weights tied as when loaded."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    # init_empty_weights re-registers parameters after transformers tied them: tie again, or a tied
    # LM head (GPT-2, most small models) would be counted twice
    model.tie_weights()
    return model


@dataclass
class TrainingRun:
    """What ``recipe.train`` returns: the trained model and tokenizer, run metrics and where files went.

    ``metrics`` is also written to ``output_dir/metrics.json`` and the recipe to ``recipe.json``.

    Example::

        >>> import lowres_adapt as la
        >>> run = la.TrainingRun(model=None, tokenizer=None, metrics={"eval_loss": 2.0},
        ...                      output_dir="out", recipe=la.LoRA())
        >>> run.output_dir.name, run.metrics["eval_loss"]
        ('out', 2.0)
    """

    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    metrics: dict[str, Any]
    output_dir: Path
    recipe: AdaptationRecipe
    log_history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)

    @classmethod
    def load_metrics(cls, output_dir: str | Path) -> dict[str, Any]:
        """Returns the ``metrics.json`` a finished run wrote to ``output_dir``.

        Example::

            >>> import lowres_adapt as la
            >>> la.TrainingRun.load_metrics("no/such/run")  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            FileNotFoundError: ...
        """
        path = Path(output_dir) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"no metrics.json in {str(output_dir)!r}; is it the output_dir of a finished run?")
        return json.loads(path.read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so ``to_dict`` is JSON/YAML friendly."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _safe_exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)

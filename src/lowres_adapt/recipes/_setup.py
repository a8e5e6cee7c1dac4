"""Setup shared by every recipe: model loading, target-module discovery, datasets, Trainer, metrics.

Kept in one module (torchtune's lesson) so FullFineTuning, LoRA and QLoRA cannot drift apart: the
recipes only decide which weights train and whether the base is quantized.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._utils import did_you_mean
from ..errors import QuantizationUnavailableError, TrainingDivergedError

logger = logging.getLogger(__name__)

# Attributes that hold a model's context length, in the order transformers' configs use them.
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")
# A parent module whose name holds one of these words is an attention block (GPT-2 "attn", Llama
# "self_attn", Falcon "self_attention", GPT-NeoX "attention", ...); class names are checked too.
_ATTENTION_WORDS = ("attn", "attention")
# Hub ids look like "name" or "org/name"; anything else that does not exist locally is a bad path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Documents packed per ``datasets.map`` batch: the remainder under one block is dropped per batch,
# so a large batch keeps the packing efficiency near 1 while memory stays bounded.
_PACK_BATCH_DOCS = 10_000
_DTYPES = ("float32", "bfloat16", "float16")


# ------------------------------------------------------------------------------------ model sources
@dataclass
class ModelSource:
    """Where a model comes from: a folder/hub id (``path``), an adapter folder, or a loaded object."""

    name: str
    config: Any
    tokenizer: Any
    path: str | None = None  # base model folder or hub id; None for an in-memory model
    model: Any = None  # an already-loaded model
    adapter_path: str | None = None  # PEFT adapter folder to continue training

    @property
    def has_adapter(self) -> bool:
        return self.adapter_path is not None or _is_peft(self.model)

    @property
    def is_4bit(self) -> bool:
        base = self.model.get_base_model() if _is_peft(self.model) else self.model
        return bool(getattr(base, "is_loaded_in_4bit", False))


def resolve_model(model, tokenizer=None) -> ModelSource:
    """Returns a ``ModelSource`` for a folder, hub id, adapter folder or loaded model (no weights loaded)."""
    from transformers import PreTrainedModel

    if isinstance(model, (str, os.PathLike)):
        return _resolve_path(str(model), tokenizer)
    if _is_peft(model) or isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise ValueError(f"a loaded {type(model).__name__} needs its tokenizer: pass tokenizer=...")
        tokenizer = _load_tokenizer(tokenizer)
        base = model.get_base_model() if _is_peft(model) else model
        name = getattr(base.config, "_name_or_path", "") or type(base).__name__
        return ModelSource(name=name, config=base.config, tokenizer=tokenizer, model=model)
    raise TypeError(f"model must be a folder, a hub id, a PreTrainedModel or a PeftModel, got {type(model).__name__}")


def _resolve_path(spec: str, tokenizer) -> ModelSource:
    from transformers import AutoConfig

    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            import json

            adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = adapter.get("base_model_name_or_path")
            if not base:
                raise ValueError(f"adapter folder {spec!r} does not name its base model "
                                 "(base_model_name_or_path in adapter_config.json)")
            has_tok = (path / "tokenizer_config.json").is_file()
            src = _resolve_path(base, tokenizer if tokenizer is not None else (str(path) if has_tok else None))
            src.adapter_path, src.name = str(path), f"{src.name} + adapter {spec}"
            return src
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {spec!r} has no config.json (nor adapter_config.json); "
                                    "pass a folder written by save_pretrained")
        config = AutoConfig.from_pretrained(path)
    elif path.exists():
        raise FileNotFoundError(f"model path {spec!r} is a file; pass the model's folder")
    elif _HUB_ID.match(spec) and not spec.startswith((".", "~")):
        try:
            config = AutoConfig.from_pretrained(spec)
        except OSError as exc:
            raise FileNotFoundError(f"model {spec!r} is not a local folder and could not be loaded as a hub id "
                                    f"({exc}); check the path, or go online for hub models") from exc
    else:
        raise FileNotFoundError(f"model path {spec!r} does not exist; pass a folder written by save_pretrained "
                                "or a hub id such as 'gpt2'")
    tok = _load_tokenizer(tokenizer if tokenizer is not None else spec)
    return ModelSource(name=spec, config=config, tokenizer=tok, path=spec)


def _load_tokenizer(tokenizer):
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no EOS token to join documents with; "
                         "set tokenizer.eos_token first")
    return tokenizer


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def context_length(config) -> int | None:
    """The model's context length from its config, or None when the config does not say."""
    for attr in _CONTEXT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_block_size(config, block_size: int) -> None:
    ctx = context_length(config)
    if ctx is not None and block_size > ctx:
        raise ValueError(f"block_size={block_size} is larger than the model's context of {ctx} tokens; "
                         f"use block_size <= {ctx}")


def training_device() -> str:
    """The device Trainer will use: "cuda" when a GPU is visible, else "cpu" (or "mps")."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def require_4bit(source: ModelSource) -> None:
    """Raises ``QuantizationUnavailableError`` (saying why, suggesting LoRA) unless 4-bit loading works here."""
    if source.model is not None:
        if not source.is_4bit:
            raise ValueError("QLoRA loads the base in 4 bits itself: pass the model's folder or hub id rather "
                             "than a loaded full-precision model, or use LoRA for a loaded model")
        return
    reason = _bnb_unavailable_reason(training_device())
    if reason:
        raise QuantizationUnavailableError(f"QLoRA cannot quantize here: {reason}. Use LoRA (same adapters, "
                                           "full-precision base) instead: la.LoRA(r=..., alpha=...)")


_BNB_CHECKED: dict[str, str | None] = {}


def _bnb_unavailable_reason(device: str) -> str | None:
    if device in _BNB_CHECKED:
        return _BNB_CHECKED[device]
    reason = None
    if device == "mps":
        reason = "bitsandbytes has no 4-bit backend for Apple MPS"
    else:
        try:
            import bitsandbytes.functional as bnbf
            import torch

            x = torch.randn(64, 64, device=device)
            packed, state = bnbf.quantize_4bit(x, quant_type="nf4")
            err = (bnbf.dequantize_4bit(packed, state) - x).abs().max().item()
            if not math.isfinite(err) or err > 1.0:
                reason = f"bitsandbytes 4-bit round trip on {device} is wrong (max error {err:.3g})"
        except ImportError as exc:
            reason = f"bitsandbytes is not installed ({exc}); pip install bitsandbytes"
        except Exception as exc:  # noqa: BLE001 - any backend failure means "cannot quantize here"
            reason = f"bitsandbytes cannot quantize on {device}: {type(exc).__name__}: {exc}"
    _BNB_CHECKED[device] = reason
    return reason


def default_dtype(quantize: bool, adapters: bool) -> str:
    """float32 on CPU; on a bf16 GPU a bf16 base for adapter recipes (frozen weights) and QLoRA compute."""
    import torch

    if training_device() == "cuda" and torch.cuda.is_bf16_supported() and (quantize or adapters):
        return "bfloat16"
    return "float32"


def load_model(source: ModelSource, *, quantization: dict[str, Any] | None, dtype: str | None, adapters: bool):
    """Returns the model of ``source``: the loaded object, or weights read from the folder/hub id, in 4 bits
    when ``quantization`` is given (bitsandbytes NF4 settings), with the adapter folder attached."""
    import torch

    if source.model is not None:
        if dtype is not None:
            logger.warning("dtype=%r ignored: the model was passed already loaded", dtype)
        return source.model
    dtype = dtype or default_dtype(quantization is not None, adapters)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES} or None, got {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quantization["quant_type"],
            bnb_4bit_use_double_quant=quantization["double_quant"], bnb_4bit_compute_dtype=torch_dtype,
        )
        if training_device() == "cuda":
            from accelerate import PartialState

            kwargs["device_map"] = {"": PartialState().local_process_index}  # one full copy per process
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    if quantization is not None:
        _disable_cpu_inference_packing(model)
    if source.adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter_path, is_trainable=True)
    return model


def _disable_cpu_inference_packing(model) -> None:
    """Keep bitsandbytes 4-bit layers in their training layout on CPU.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight for a faster kernel the first
    time it runs in eval mode, and never packs it back: training after an evaluation then fails
    ("a view of a leaf Variable ... in-place"), and layers narrower than the 64-wide quantization block
    cannot be repacked at all. Evaluation in the training layout is slower but correct.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def enable_checkpointing(model) -> None:
    """Non-reentrant gradient (activation) checkpointing on a transformers model or a PEFT-wrapped one."""
    base = model.get_base_model() if _is_peft(model) else model
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - older transformers
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    base.config.use_cache = False


# ------------------------------------------------------------------------------------ target modules
def find_target_modules(model, which: str = "attention") -> list[str]:
    """Returns the module-name suffixes a LoRA adapter should target in ``model``.

    ``which="attention"`` finds the attention projections of whatever architecture is in hand (GPT-2's
    Conv1D ``attn.c_attn``/``attn.c_proj``, Llama/Mistral/Qwen2 ``q_proj``/``k_proj``/``v_proj``/``o_proj``,
    Phi's ``dense``, Falcon's ``query_key_value``, ...): linear layers inside a module named or typed as
    attention. ``which="all-linear"`` adds the MLP projections; the LM head is never targeted. Each suffix
    is the shortest that matches only chosen layers under PEFT's matching (so GPT-2's MLP ``c_proj`` is
    not caught by the attention ``c_proj``). When nothing matches, ``ValueError`` lists the model's layers.

    Example::

        >>> import lowres_adapt as la
        >>> la.find_target_modules(la.build_tiny_model("gpt2", vocab_size=50, hidden_size=16))
        ['attn.c_proj', 'c_attn']
        >>> la.find_target_modules(la.build_tiny_model("llama", vocab_size=50, hidden_size=16), "all-linear")
        ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']
    """
    if which not in ("attention", "all-linear"):
        raise ValueError(f"which must be 'attention' or 'all-linear', got {which!r}")
    base = model.get_base_model() if _is_peft(model) else model
    linear = _linear_layers(base)
    if which == "all-linear":
        chosen = set(linear)
    else:
        modules = dict(base.named_modules())
        chosen = {name for name in linear if _inside_attention(name, modules)}
    if not chosen:
        kinds = sorted({f"{n.rsplit('.', 1)[-1]} ({type(m).__name__})" for n, m in base.named_modules() if n})
        raise ValueError(f"found no {which} projections to adapt in {type(base).__name__}; its modules are: "
                         f"{kinds[:60]}{' ...' if len(kinds) > 60 else ''}. Pass target_modules=[...] explicitly")
    return sorted(_shortest_suffixes(chosen, set(linear) - chosen))


def check_target_modules(model, targets: Sequence[str]) -> None:
    """Raises ``ValueError`` listing the model's linear layers when a name in ``targets`` matches none."""
    base = model.get_base_model() if _is_peft(model) else model
    names = [n for n, _ in base.named_modules() if n]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in _linear_layers(base)})
        raise ValueError(f"target_modules {missing} match no module of {type(base).__name__}; its linear layers "
                         f"are {leaves}; or use target_modules='auto' / 'all-linear'")


def _linear_layers(model) -> dict[str, Any]:
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    skip_prefixes: list[str] = []
    out = {}
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if hasattr(module, "base_layer") and hasattr(module, "active_adapters"):  # a PEFT layer: keep it whole
            skip_prefixes.append(name + ".")
            out[name] = module
            continue
        if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head:
            out[name] = module
    return out


def _inside_attention(name: str, modules: dict[str, Any]) -> bool:
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        word = parts[i - 1].lower()
        if any(w in word for w in _ATTENTION_WORDS) or "attention" in type(modules[parent]).__name__.lower():
            return True
    return False


def _shortest_suffixes(chosen: set[str], others: set[str]) -> set[str]:
    def matches(suffix: str, name: str) -> bool:
        return name == suffix or name.endswith("." + suffix)

    out = set()
    for name in chosen:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if not any(matches(suffix, o) for o in others):
                out.add(suffix)
                break
    return out


# ------------------------------------------------------------------------------------ data
def pack_texts(tokenizer, texts: Sequence[str], block_size: int, what: str):
    """Returns ``(dataset, stats)``: documents tokenized with ``datasets.map``, joined with EOS, packed
    into ``block_size`` blocks by ``lowres_adapt.data.pack_documents``."""
    from datasets import Dataset

    from ..data import pack_documents

    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of documents, not one string; wrap it: [{what}]")
    docs = [t for t in texts if isinstance(t, str) and t.strip()]
    if not docs:
        raise ValueError(f"{what} has no non-empty document")
    eos = tokenizer.eos_token_id

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": ids, "n_tokens": [len(x) + 1 for x in ids]}  # +1: the EOS that joins them

    def pack(batch):
        blocks, _ = pack_documents(batch["input_ids"], block_size, eos)
        return {"input_ids": blocks}

    tokenized = Dataset.from_dict({"text": docs}).map(tokenize, batched=True, remove_columns=["text"],
                                                      desc=f"tokenize {what}")
    n_tokens = int(sum(tokenized["n_tokens"]))
    packed = tokenized.map(pack, batched=True, batch_size=_PACK_BATCH_DOCS, remove_columns=tokenized.column_names,
                           desc=f"pack {what}")
    if len(packed) == 0:
        raise ValueError(f"{what} has {n_tokens} tokens, fewer than one block of block_size={block_size}; "
                         "lower block_size or give more text")
    kept = len(packed) * block_size
    stats = {"n_tokens": n_tokens, "n_blocks": len(packed), "dropped_tokens": n_tokens - kept,
             "packing_efficiency": kept / n_tokens}
    return packed, stats


_EXAMPLE_COLUMNS = ("input_ids", "labels", "attention_mask")


def as_dataset(data, what: str, context: int | None):
    """Returns a ``datasets.Dataset`` of pre-tokenized examples (``input_ids`` [+ ``labels``, ``attention_mask``])."""
    from datasets import Dataset

    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, Sequence) and not isinstance(data, str):
        if not all(isinstance(r, dict) for r in data):
            raise TypeError(f"{what} must be a datasets.Dataset or a list of dicts with input_ids")
        ds = Dataset.from_list([{k: r[k] for k in _EXAMPLE_COLUMNS if k in r} for r in data]) if data else None
    else:
        raise TypeError(f"{what} must be a datasets.Dataset or a list of dicts, got {type(data).__name__}")
    if ds is None or len(ds) == 0:
        raise ValueError(f"{what} is empty")
    if "input_ids" not in ds.column_names:
        raise ValueError(f"{what} has no input_ids column (columns: {ds.column_names}); tokenize it first")
    ds = ds.select_columns([c for c in _EXAMPLE_COLUMNS if c in ds.column_names])
    longest = max(len(x) for x in ds["input_ids"])
    if longest == 0:
        raise ValueError(f"{what} holds only empty examples")
    if context is not None and longest > context:
        raise ValueError(f"{what} has an example of {longest} tokens, longer than the model's context of "
                         f"{context}; truncate examples to <= {context} tokens")
    return ds


class PadCollator:
    """Batches examples of any length: right-pads ``input_ids`` with ``pad_id`` and ``labels`` with -100.

    ``labels`` default to ``input_ids`` (the model shifts them); ``attention_mask`` is added when lengths
    differ or ``always_mask`` is set (so Trainer counts non-padding tokens).
    """

    def __init__(self, pad_id: int, always_mask: bool = False) -> None:
        self.pad_id = pad_id
        self.always_mask = always_mask

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(e["input_ids"]) for e in examples]
        width = max(lengths)
        simple = (min(lengths) == width and not self.always_mask
                  and not any("labels" in e or "attention_mask" in e for e in examples))
        if simple:  # packed blocks: one tensor, labels are the inputs
            ids = torch.tensor([list(e["input_ids"]) for e in examples], dtype=torch.long)
            return {"input_ids": ids, "labels": ids.clone()}
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (e, n) in enumerate(zip(examples, lengths, strict=True)):
            ids[i, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
            lab = e.get("labels")
            if lab is not None and len(lab) != n:
                raise ValueError(f"an example has {n} input_ids but {len(lab)} labels; they must align")
            labels[i, :n] = torch.as_tensor(lab if lab is not None else e["input_ids"], dtype=torch.long)
            m = e.get("attention_mask")
            mask[i, :n] = torch.as_tensor(m, dtype=torch.long) if m is not None else 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# ------------------------------------------------------------------------------------ training
@dataclass
class TrainOptions:
    """The training settings ``recipe.train`` takes, validated before anything loads."""

    seed: int = 0
    max_steps: int = 100
    block_size: int = 256
    batch_size: int = 8
    learning_rate: float = 1e-4
    gradient_accumulation_steps: int = 1
    warmup_steps: int | float = 0
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool | None = None
    eval_batch_size: int | None = None
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int | None = None
    logging_steps: int = 10
    report_to: str | list[str] = "none"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        _check_int("max_steps", self.max_steps, 1)
        _check_int("block_size", self.block_size, 2)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        _check_int("logging_steps", self.logging_steps, 1)
        for name in ("eval_batch_size", "eval_steps", "save_steps", "save_total_limit"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 or (isinstance(w, float) and w >= 1):
            raise ValueError(f"warmup_steps must be an int >= 0 or a float share in [0, 1), got {w!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm!r}")
        from transformers import SchedulerType

        known = [s.value for s in SchedulerType]
        if self.lr_scheduler_type not in known:
            raise ValueError(f"unknown lr_scheduler_type {self.lr_scheduler_type!r}"
                             f"{did_you_mean(self.lr_scheduler_type, known)}; known: {known}")
        self._check_extra()

    def _check_extra(self) -> None:
        from dataclasses import fields as dc_fields

        from transformers import TrainingArguments

        known = {f.name for f in dc_fields(TrainingArguments)}
        ours = {"per_device_train_batch_size": "batch_size", "per_device_eval_batch_size": "eval_batch_size",
                "max_steps": "max_steps", "learning_rate": "learning_rate", "seed": "seed",
                "output_dir": "output_dir", "gradient_accumulation_steps": "gradient_accumulation_steps",
                "warmup_steps": "warmup_steps", "lr_scheduler_type": "lr_scheduler_type",
                "save_steps": "save_steps", "eval_steps": "eval_steps", "logging_steps": "logging_steps",
                "gradient_checkpointing": "gradient_checkpointing", "bf16": "bf16", "report_to": "report_to",
                "resume_from_checkpoint": "resume_from_checkpoint"}
        for key in self.extra:
            if key in ours:
                raise ValueError(f"pass {ours[key]}=... to train() rather than the TrainingArguments field {key!r}")
            if key not in known:
                raise ValueError(f"unknown training argument {key!r}{did_you_mean(key, known)}: extra keywords of "
                                 "train() go to transformers.TrainingArguments")
        if self.extra.get("logging_nan_inf_filter"):
            raise ValueError("logging_nan_inf_filter=True would hide the NaN loss that stops a diverged run; "
                             "leave it out")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def make_output_dir(output_dir) -> Path:
    if output_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("with several processes every rank must write to the same folder: pass output_dir=...")
        return Path(tempfile.mkdtemp(prefix="lowres-adapt-run-"))
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output_dir {str(path)!r} is a file; pass a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_resume(resume, output_dir: Path) -> None:
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        if get_last_checkpoint(str(output_dir)) is None:
            raise ValueError(f"resume_from_checkpoint=True but {str(output_dir)!r} has no checkpoint-N folder; "
                             "train with save_steps=... first, or pass a checkpoint path")
    elif resume not in (None, False) and not Path(resume).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint {str(resume)!r} is not a folder; pass a checkpoint-N "
                                "folder written with save_steps=..., or True for the latest")


class DivergenceCallback:
    """Stops training with ``TrainingDivergedError`` at the first non-finite logged training loss.

    The loss logged at step N is computed with the weights of ``checkpoint-(N-1)``, so a checkpoint is
    known good only once the step after it logged a finite loss. To make that check exact the callback
    forces a log on every step that saves or evaluates and on the step right after a save.
    """

    def __init__(self) -> None:
        self.last_logged_step = 0
        self._saved_before = False

    # TrainerCallback hooks (duck-typed: Trainer calls the ones it knows; see _callback_class below)
    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_evaluate or control.should_training_stop or self._saved_before:
            control.should_log = True
        self._saved_before = bool(control.should_save)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return control
        if not math.isfinite(loss):
            first = self.last_logged_step + 1
            steps = f"step {state.global_step}" if first >= state.global_step else \
                f"steps {first}..{state.global_step}"
            # the first step that may have gone bad used the weights saved after the step before it
            good = last_checkpoint(args.output_dir, before=first - 2)
            where = (f"the last good checkpoint is {good} (resume with resume_from_checkpoint={str(good)!r})"
                     if good else "no good checkpoint was saved before it (pass save_steps=N to keep some)")
            raise TrainingDivergedError(
                f"training loss became {loss} in {steps}; {where}. Lower learning_rate (was "
                f"{args.learning_rate:g}), add warmup_steps, or keep gradient clipping (max_grad_norm)"
            )
        self.last_logged_step = state.global_step
        return control


def last_checkpoint(output_dir, before: int) -> Path | None:
    """The ``checkpoint-N`` folder in ``output_dir`` with the largest N <= ``before``, or None."""
    best = None
    for p in Path(output_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir() and int(m.group(1)) <= before and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return None if best is None else best[1]


def _callback_class():
    from transformers import TrainerCallback

    return type("DivergenceCallback", (DivergenceCallback, TrainerCallback), {})


def build_trainer(model, tokenizer, train_ds, eval_ds, opts: TrainOptions, output_dir: Path, *,
                  optimizer=None, callbacks: list | None = None, packed: bool = True):
    """Returns a ``transformers.Trainer`` with the library's defaults, the divergence callback and collator."""
    import torch
    from transformers import Trainer, TrainingArguments

    bf16 = opts.bf16
    if bf16 is None:
        bf16 = training_device() == "cuda" and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size or opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation_steps,
        learning_rate=opts.learning_rate,
        weight_decay=opts.weight_decay,
        warmup_steps=opts.warmup_steps,
        lr_scheduler_type=opts.lr_scheduler_type,
        max_grad_norm=opts.max_grad_norm,
        logging_steps=opts.logging_steps,
        logging_nan_inf_filter=False,  # the divergence check must see NaN/inf losses
        save_strategy="steps" if opts.save_steps else "no",
        save_steps=opts.save_steps or 500,
        save_total_limit=opts.save_total_limit,
        eval_strategy="steps" if (opts.eval_steps and eval_ds is not None) else "no",
        eval_steps=opts.eval_steps,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=bf16,
        report_to=opts.report_to,
        remove_unused_columns=False,  # the collator builds exactly what the model takes
        # packed blocks hold EOS (= pad for many tokenizers) as real tokens: count them all
        include_num_input_tokens_seen="all" if packed else "non_padding",
        # use_cpu: without it accelerate never starts multi-CPU DDP (gloo) under torchrun/accelerate launch
        **{"dataloader_pin_memory": training_device() == "cuda", "use_cpu": training_device() == "cpu",
           **opts.extra},
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cb = _callback_class()()
    return Trainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=PadCollator(pad, always_mask=not packed), processing_class=tokenizer,
        callbacks=[cb, *(callbacks or [])], optimizers=(optimizer, None),
    )


# ------------------------------------------------------------------------------------ metrics
def count_parameters(model) -> dict[str, int]:
    """``{"trainable", "total"}`` counted as PEFT counts them (bitsandbytes 4-bit weights unpacked)."""
    from peft import PeftModel

    trainable, total = PeftModel.get_nb_trainable_parameters(model)  # only uses model.named_parameters()
    return {"trainable": int(trainable), "total": int(total)}


def weight_bytes(model) -> int:
    """Bytes held by the model's parameters as stored (4-bit weights take half a byte per weight)."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[int, str]:
    """(bytes, kind): CUDA max allocated since the reset, or the process's peak resident memory on CPU."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_process_peak_rss"


def save_pissa_init(model, output_dir: Path) -> Path:
    """Saves the freshly initialised PiSSA adapter so the trained one can be saved as plain LoRA for the
    original base (PEFT's ``path_initial_model_for_weight_conversion``)."""
    from accelerate import PartialState

    init_dir = output_dir / "pissa_init"
    cfg = model.peft_config[model.active_adapter]
    orig = cfg.init_lora_weights
    cfg.init_lora_weights = True  # PEFT's recipe: the saved initial adapter is a plain LoRA one
    try:
        model.save_pretrained(str(init_dir), is_main_process=PartialState().is_main_process)
    finally:
        cfg.init_lora_weights = orig
    return init_dir

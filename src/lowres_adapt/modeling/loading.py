"""Where a recipe's model comes from and how it loads: model sources (path, hub id, PEFT adapter folder,
model object), context length, the training device, the 4-bit availability check, dtypes and
gradient checkpointing. Shared by every recipe so FullFineTuning, LoRA and QLoRA load alike."""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._utils import config_context_length
from ..errors import QuantizationUnavailableError

logger = logging.getLogger(__name__)

# Hub ids look like "name" or "org/name"; anything else that does not exist locally is a bad path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def is_hub_id(spec: str) -> bool:
    """True when ``spec`` is shaped like a hub id (``"gpt2"``, ``"mistralai/Mistral-7B-v0.1"``), not a path.

    Example::

        >>> from lowres_adapt.modeling import is_hub_id
        >>> is_hub_id("mistralai/Mistral-7B-v0.1"), is_hub_id("./runs/model")
        (True, False)
    """
    spec = str(spec)
    return bool(_HUB_ID.match(spec)) and not spec.startswith((".", "~"))
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
        return self.adapter_path is not None or is_peft(self.model)

    @property
    def is_4bit(self) -> bool:
        base = self.model.get_base_model() if is_peft(self.model) else self.model
        return bool(getattr(base, "is_loaded_in_4bit", False))


def resolve_model(model, tokenizer=None) -> ModelSource:
    """Returns a ``ModelSource`` for a folder, hub id, adapter folder or loaded model (no weights loaded)."""
    from transformers import PreTrainedModel

    if isinstance(model, (str, os.PathLike)):
        from ..data import resolve_sample

        return _resolve_path(str(resolve_sample(model)), resolve_sample(tokenizer))
    if is_peft(model) or isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise ValueError(f"a loaded {type(model).__name__} needs its tokenizer: pass tokenizer=...")
        tokenizer = _load_tokenizer(tokenizer)
        base = model.get_base_model() if is_peft(model) else model
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
    elif is_hub_id(spec):
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


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def context_length(config) -> int | None:
    """The model's context length from its config (the text model's for composite configs), or None when
    the config does not say."""
    return config_context_length(config)


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
    base = model.get_base_model() if is_peft(model) else model
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - older transformers
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    base.config.use_cache = False


def disable_checkpointing(model) -> None:
    """Turns gradient checkpointing off again, undoing what ``enable_checkpointing`` set on the embeddings."""
    base = model.get_base_model() if is_peft(model) else model
    if hasattr(base, "activation_checkpointing_disable"):  # transformers >= 5.x name
        base.activation_checkpointing_disable()
    elif hasattr(base, "gradient_checkpointing_disable"):  # pragma: no cover - older transformers
        base.gradient_checkpointing_disable()
    if hasattr(base, "_require_grads_hook"):  # enabling made the embeddings' output require grad: undo it
        base.disable_input_require_grads()

"""The one place models load: model sources (path, hub id, PEFT adapter folder, ``sample:`` name, model
object), the dtype / device / quantization policy, pass-through loading options, context length, the
4-bit availability check and gradient checkpointing. Recipes, the evaluator, ``generate``, the study and
the CLI all load through here, so one question gets one answer whichever door it comes in by.

The policy (docs/recipes.md, "How models load"):

- a base loads as ``"fp32"`` on CPU; on a GPU, adapter recipes (LoRA) load it in ``"bf16"`` where the
  GPU has bfloat16 and ``"fp16"`` where it does not; full fine-tuning keeps ``"fp32"`` master weights
  (Trainer trains under bf16/fp16 autocast); QLoRA loads the ``"nf4"`` base (compute in bf16/fp16 on a
  GPU, fp32 on CPU);
- evaluation and generation of a model path load it as its runs would (``load=``), else in bf16/fp16 on
  a GPU and fp32 on CPU, on the GPU when there is one, with ``device_map="auto"`` when the weights do not
  fit on one device;
- ``model_kwargs`` pass through to ``from_pretrained`` (``revision``, ``attn_implementation``,
  ``device_map``, ``low_cpu_mem_usage``, ``trust_remote_code``, ...); remote code stays off unless the user
  turns it on.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._utils import config_context_length
from ..errors import QuantizationUnavailableError
from .policy import (
    _DTYPE_OF_LOAD,
    _LOAD_OF_DTYPE,
    _QUANTIZED_LOADS,
    BASE_LOADS,
    QLORA_QUANTIZATION,
    compute_dtype,
    default_dtype,
    default_inference_load,
    inference_device_map,
    local_cuda_index,
    training_device,
)

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

# Options passed through to ``from_pretrained``; the ones in _HUB_OPTIONS also reach the config and tokenizer.
MODEL_KWARGS = ("revision", "attn_implementation", "device_map", "low_cpu_mem_usage", "trust_remote_code",
                "cache_dir", "token", "local_files_only", "subfolder", "max_memory", "offload_folder")
_HUB_OPTIONS = ("revision", "trust_remote_code", "cache_dir", "token", "local_files_only", "subfolder")
_OWNED_BY_LIBRARY = {
    "dtype": "pass load='bf16'/'fp16'/'fp32' (evaluation, generation) or dtype= (recipes)",
    "torch_dtype": "pass load='bf16'/'fp16'/'fp32' (evaluation, generation) or dtype= (recipes)",
    "quantization_config": "use la.QLoRA (training) or load='nf4' (evaluation, generation)",
    "load_in_4bit": "use la.QLoRA (training) or load='nf4' (evaluation, generation)",
    "load_in_8bit": "8-bit bases are not supported; use load='nf4' or a full-precision load",
}


def check_model_kwargs(model_kwargs) -> dict[str, Any]:
    """Returns ``model_kwargs`` as a dict, checked: only the pass-through options of ``MODEL_KWARGS``.

    Example::

        >>> from lowres_adapt.modeling import check_model_kwargs
        >>> check_model_kwargs({"revision": "main", "attn_implementation": "sdpa"})
        {'revision': 'main', 'attn_implementation': 'sdpa'}
        >>> check_model_kwargs({"atn_implementation": "sdpa"})
        Traceback (most recent call last):
        ...
        ValueError: model_kwargs has unknown option 'atn_implementation' (did you mean 'attn_implementation'?); ...
    """
    from .._utils import did_you_mean

    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict of from_pretrained options, got {type(model_kwargs).__name__}")
    for key in model_kwargs:
        if key in _OWNED_BY_LIBRARY:
            raise ValueError(f"model_kwargs cannot set {key!r}: the library sets it from the recipe; "
                             f"{_OWNED_BY_LIBRARY[key]}")
        if key not in MODEL_KWARGS:
            raise ValueError(f"model_kwargs has unknown option {key!r}{did_you_mean(key, MODEL_KWARGS)}; "
                             f"the options passed through to from_pretrained are {list(MODEL_KWARGS)}")
    trc = model_kwargs.get("trust_remote_code", False)
    if not isinstance(trc, bool):
        raise ValueError(f"model_kwargs['trust_remote_code'] must be True or False, got {trc!r}")
    return dict(model_kwargs)


def _hub_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _HUB_OPTIONS}

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
    options: dict[str, Any] = field(default_factory=dict)  # checked model_kwargs for from_pretrained

    @property
    def has_adapter(self) -> bool:
        return self.adapter_path is not None or is_peft(self.model)

    @property
    def is_4bit(self) -> bool:
        base = self.model.get_base_model() if is_peft(self.model) else self.model
        return bool(getattr(base, "is_loaded_in_4bit", False))


def resolve_model(model, tokenizer=None, *, model_kwargs: dict[str, Any] | None = None,
                  require_eos: bool = True) -> ModelSource:
    """Returns a ``ModelSource`` for a folder, hub id, adapter folder, ``sample:`` name or loaded model.

    Reads the config and the tokenizer, no weights; ``model_kwargs`` are checked here (before anything
    loads) and kept for ``load_model``. Training needs an EOS token to join documents (``require_eos``).

    Example::

        >>> from lowres_adapt import modeling
        >>> src = modeling.resolve_model("sample:mini-gpt2-ru", model_kwargs={"low_cpu_mem_usage": True})
        >>> src.config.model_type, src.options
        ('gpt2', {'low_cpu_mem_usage': True})
    """
    from transformers import PreTrainedModel

    options = check_model_kwargs(model_kwargs)
    if isinstance(model, (str, os.PathLike)):
        from ..data import resolve_sample

        source = _resolve_path(str(resolve_sample(model)), resolve_sample(tokenizer), options, require_eos)
        source.options = options
        return source
    if is_peft(model) or isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise ValueError(f"a loaded {type(model).__name__} needs its tokenizer: pass tokenizer=...")
        tokenizer = _load_tokenizer(tokenizer, options, require_eos)
        base = model.get_base_model() if is_peft(model) else model
        name = getattr(base.config, "_name_or_path", "") or type(base).__name__
        if options:
            logger.warning("model_kwargs %s ignored: the model was passed already loaded", sorted(options))
        return ModelSource(name=name, config=base.config, tokenizer=tokenizer, model=model)
    raise TypeError(f"model must be a folder, a hub id, a PreTrainedModel or a PeftModel, got {type(model).__name__}")


def _resolve_path(spec: str, tokenizer, options: dict[str, Any], require_eos: bool = True) -> ModelSource:
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
            src = _resolve_path(base, tokenizer if tokenizer is not None else (str(path) if has_tok else None),
                                options, require_eos)
            src.adapter_path, src.name = str(path), f"{src.name} + adapter {spec}"
            return src
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {spec!r} has no config.json (nor adapter_config.json); "
                                    "pass a folder written by save_pretrained")
        config = AutoConfig.from_pretrained(path, **_hub_options(options))
    elif path.exists():
        raise FileNotFoundError(f"model path {spec!r} is a file; pass the model's folder")
    elif is_hub_id(spec):
        try:
            config = AutoConfig.from_pretrained(spec, **_hub_options(options))
        except OSError as exc:
            raise FileNotFoundError(f"model {spec!r} is not a local folder and could not be loaded as a hub id "
                                    f"({exc}); check the path, or go online for hub models") from exc
    else:
        raise FileNotFoundError(f"model path {spec!r} does not exist; pass a folder written by save_pretrained "
                                "or a hub id such as 'gpt2'")
    tok = _load_tokenizer(tokenizer if tokenizer is not None else spec, options, require_eos)
    return ModelSource(name=spec, config=config, tokenizer=tok, path=spec)


def _load_tokenizer(tokenizer, options: dict[str, Any] | None = None, require_eos: bool = True):
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), **_hub_options(options or {}))
    if require_eos and tokenizer.eos_token_id is None:
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

            where = f"cuda:{local_cuda_index()}" if device == "cuda" else device
            x = torch.randn(64, 64, device=where)
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


def base_load_of(model) -> str:
    """Returns how ``model``'s base weights are held: ``"nf4"`` for a 4-bit base, else its float dtype
    (``"fp32"``, ``"bf16"``, ``"fp16"``).

    Example::

        >>> import torch, transformers
        >>> from lowres_adapt.modeling import base_load_of
        >>> cfg = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10)
        >>> base_load_of(transformers.GPT2LMHeadModel(cfg).to(torch.bfloat16))
        'bf16'
    """
    base = model.get_base_model() if is_peft(model) else model
    if getattr(base, "is_loaded_in_4bit", False):
        qc = getattr(base.config, "quantization_config", None)
        quant = qc.get("bnb_4bit_quant_type") if isinstance(qc, dict) else getattr(qc, "bnb_4bit_quant_type", None)
        return str(quant or "nf4")
    dtype = str(getattr(base, "dtype", "torch.float32")).replace("torch.", "")
    return _LOAD_OF_DTYPE.get(dtype, dtype)


def _quantization_config(quantization: dict[str, Any], torch_dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=quantization["quant_type"],
        bnb_4bit_use_double_quant=quantization["double_quant"], bnb_4bit_compute_dtype=torch_dtype,
    )


def load_model(source: ModelSource, *, quantization: dict[str, Any] | None, dtype: str | None, adapters: bool):
    """Returns the model of ``source`` for training: the loaded object, or weights read from the folder/hub
    id under the policy (``default_base_load``), in 4 bits when ``quantization`` is given (bitsandbytes NF4
    settings), with ``source.options`` passed through and the adapter folder attached (trainable)."""
    import torch

    if source.model is not None:
        if dtype is not None:
            logger.warning("dtype=%r ignored: the model was passed already loaded", dtype)
        return source.model
    dtype = dtype or default_dtype(quantization is not None, adapters)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES} or None, got {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {**source.options, "dtype": torch_dtype}
    if quantization is not None:
        kwargs["quantization_config"] = _quantization_config(quantization, torch_dtype)
        if training_device() == "cuda" and "device_map" not in kwargs:
            kwargs["device_map"] = {"": local_cuda_index()}  # one full copy per process
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    if quantization is not None:
        _disable_cpu_inference_packing(model)
    if source.adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter_path, is_trainable=True)
    return model


def load_for_inference(model, tokenizer=None, *, load: str | None = None,
                       model_kwargs: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """Returns ``(model, tokenizer)`` ready to evaluate or generate, loaded under the library's policy.

    ``model``: a folder, hub id, adapter folder (its base loads, then the adapter), ``sample:`` name, or a
    loaded model (returned as it is; then ``tokenizer`` is required). ``load``: ``"fp32"``, ``"bf16"``,
    ``"fp16"``, or ``"nf4"`` (the 4-bit base QLoRA trains on; ``"fp4"`` likewise); ``None`` for ``default_inference_load``.
    On a GPU the model goes to this process's GPU, or is spread with ``device_map="auto"`` when its
    weights do not fit there; ``model_kwargs`` (``revision``, ``attn_implementation``, ``device_map``,
    ``trust_remote_code``, ...) pass through.

    Example::

        >>> from lowres_adapt.modeling import load_for_inference, base_load_of
        >>> model, tok = load_for_inference("sample:mini-gpt2-ru")
        >>> base_load_of(model), model.training
        ('fp32', False)
    """
    import torch

    if load is not None and load not in BASE_LOADS:
        from .._utils import did_you_mean

        raise ValueError(f"load={load!r} is not known{did_you_mean(str(load), BASE_LOADS)}; use one of {BASE_LOADS}")
    source = resolve_model(model, tokenizer, model_kwargs=model_kwargs, require_eos=False)
    if source.model is not None:
        return source.model, source.tokenizer
    device = training_device()
    load = load or default_inference_load(device)
    quantized = load in _QUANTIZED_LOADS
    if quantized:
        reason = _bnb_unavailable_reason(device)
        if reason:
            raise QuantizationUnavailableError(f"load={load!r} cannot quantize here: {reason}; use load='fp32'")
    torch_dtype = getattr(torch, compute_dtype(device) if quantized else _DTYPE_OF_LOAD[load])
    kwargs: dict[str, Any] = {**source.options, "dtype": torch_dtype}
    if quantized:
        kwargs["quantization_config"] = _quantization_config({**QLORA_QUANTIZATION, "quant_type": load}, torch_dtype)
    if device == "cuda" and "device_map" not in kwargs:
        kwargs["device_map"] = inference_device_map(source.config, load)
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    if quantized:
        _disable_cpu_inference_packing(loaded)
    if source.adapter_path is not None:
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, source.adapter_path, is_trainable=False)
    return loaded.eval(), source.tokenizer


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

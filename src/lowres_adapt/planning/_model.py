"""The model a memory plan reads: built on the meta device from a config, adapted as the recipe adapts
it, with the layers QLoRA would quantize marked, and the bytes its weights take as stored.

Nothing here allocates weight memory: every tensor lives on the meta device (shape and dtype only).
The rules copy the libraries the recipes use, so the plan follows them rather than a guess:

- which layers QLoRA quantizes: transformers' own choice (``get_keys_to_not_convert``: the LM head, tied
  weights and the last module stay unquantized; ``nn.Linear`` and GPT-2's ``Conv1D`` are quantized,
  embeddings and norms are not), as ``Bnb4BitHfQuantizer`` runs it before loading;
- how a 4-bit weight is stored: bitsandbytes' ``quantize_4bit`` (packed uint8, two weights a byte; one
  fp32 absmax per 64 weights, or with double quantization one uint8 per 64 weights plus, per 256 of
  those, one fp32 second-level scale, the 256-entry fp32 code of the second level, the layer's 16-entry
  NF4 code and the fp32 offset);
- what PEFT's ``prepare_model_for_kbit_training`` does next: every fp16/bf16 parameter that is not 4-bit
  (embeddings, LM head, norms, biases) is cast to fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..modeling import is_hub_id

_DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}
_QUANT_BLOCK = 64  # bitsandbytes Params4bit default blocksize (weights per absmax)
_NESTED_BLOCK = 256  # double quantization: absmax values per second-level fp32 scale


def nf4_bytes(numel: int, double_quant: bool = True) -> tuple[int, int]:
    """(packed weight bytes, quantization-constant bytes) of one weight of ``numel`` values in NF4/FP4.

    Follows ``bitsandbytes.functional.quantize_4bit`` (0.4x-0.50): ``ceil(n/2)`` packed bytes; absmax per
    64-value block, fp32, or with double quantization uint8 plus ``ceil(blocks/256)`` fp32 scales, the
    256-value fp32 code of the second level and the fp32 offset; and the 16-value fp32 NF4 code.

    Example::

        >>> from lowres_adapt.planning._model import nf4_bytes
        >>> nf4_bytes(4096 * 4096)          # one 4096 x 4096 projection, double quantized
        (8388608, 267332)
    """
    packed = (numel + 1) // 2
    blocks = math.ceil(numel / _QUANT_BLOCK)
    code = 16 * 4
    if double_quant:
        constants = blocks + math.ceil(blocks / _NESTED_BLOCK) * 4 + 256 * 4 + 4 + code
    else:
        constants = blocks * 4 + code
    return packed, constants


@dataclass
class MetaModel:
    """The adapted meta model and what the plan needs to know about its tensors."""

    model: Any
    config: Any
    quantized: set[int] = field(default_factory=set)  # ids of the base weights QLoRA stores in 4 bits
    compute_dtype: Any = None  # dtype the 4-bit layers compute in (QLoRA); None otherwise
    double_quant: bool = True

    def output_embeddings(self):
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return base.get_output_embeddings()


def resolve_config(model_or_config):
    """A transformers config from a config, a loaded model, a local folder / config.json, a hub id or
    ``"sample:<name>"`` (a model shipped with the package)."""
    from pathlib import Path

    from transformers import AutoConfig, PretrainedConfig

    from ..data import resolve_sample

    model_or_config = resolve_sample(model_or_config)

    if isinstance(model_or_config, PretrainedConfig):
        return model_or_config
    config = getattr(model_or_config, "config", None)
    if isinstance(config, PretrainedConfig):  # a loaded model (or PeftModel)
        base = model_or_config.get_base_model() if hasattr(model_or_config, "get_base_model") else model_or_config
        return base.config
    if not isinstance(model_or_config, (str, Path)):
        raise TypeError(f"model_or_config must be a transformers config, a model, a folder or a hub id, "
                        f"got {type(model_or_config).__name__}")
    spec = Path(str(model_or_config)).expanduser()
    if spec.is_file() and spec.suffix == ".json":
        return AutoConfig.from_pretrained(str(spec.parent)) if spec.name == "config.json" else \
            _config_from_json(spec)
    if spec.exists() and not (spec / "config.json").is_file():
        if (spec / "adapter_config.json").is_file():
            import json

            base = json.loads((spec / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
            if base:
                return resolve_config(base)
        raise FileNotFoundError(f"{str(model_or_config)!r} has no config.json; pass a model folder, a config.json "
                                "or a hub id (only its config.json is read)")
    if not spec.exists() and not is_hub_id(str(model_or_config)):
        raise FileNotFoundError(f"model path {str(model_or_config)!r} does not exist; pass a model folder, a "
                                "config.json or a hub id such as 'gpt2'")
    try:
        return AutoConfig.from_pretrained(str(model_or_config))
    except OSError as exc:
        raise FileNotFoundError(f"could not read the config of {str(model_or_config)!r} ({exc}); pass a local model "
                                "folder or config.json, or go online for a hub id") from exc


def _config_from_json(path):
    import json

    from transformers import AutoConfig

    data = json.loads(path.read_text(encoding="utf-8"))
    if "model_type" not in data:
        raise ValueError(f"{str(path)!r} has no model_type; it is not a transformers config.json")
    return AutoConfig.for_model(**data)


def build_meta_model(config, recipe, dtype: str) -> MetaModel:
    """The model the recipe would train, built on the meta device in ``dtype`` and adapted by the recipe.

    For a 4-bit recipe the base stays in ``dtype`` (the compute dtype) on the meta device, the layers
    bitsandbytes would quantize are recorded in ``MetaModel.quantized``, and the other base parameters
    are cast to fp32 the way ``prepare_model_for_kbit_training`` casts them.
    """
    import copy

    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(config)
    config.use_cache = False
    with init_empty_weights(include_buffers=True):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.tie_weights()  # init_empty_weights re-registers parameters after transformers tied them
    quant = recipe._quantization()
    quantized: set[int] = set()
    if quant is not None:
        for module in quantized_modules(model):
            quantized.add(id(module.weight))
        for param in model.parameters():
            param.requires_grad = False
            if param.dtype in (torch.float16, torch.bfloat16) and id(param) not in quantized:
                param.data = param.data.to(torch.float32)
    import warnings

    with warnings.catch_warnings():  # PEFT asks transformers a deprecated checkpointing question
        warnings.filterwarnings("ignore", message=".*checkpointing.*deprecated", category=FutureWarning)
        model = recipe._adapt(model, for_counting=True)
    model.train()
    return MetaModel(model=model, config=config, quantized=quantized,
                     compute_dtype=getattr(torch, dtype) if quant is not None else None,
                     double_quant=bool(quant and quant.get("double_quant", True)))


def quantized_modules(model) -> list:
    """The modules ``load_in_4bit`` replaces by ``bnb.nn.Linear4bit`` in ``model`` (transformers' rule)."""
    import torch.nn as nn
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    return [m for name, m in model.named_modules()
            if (isinstance(m, Conv1D) or type(m) is nn.Linear) and should_convert_module(name, skip)]


def weight_terms(meta: MetaModel) -> dict[str, Any]:
    """Bytes of the stored weights, split: 4-bit packed, its quantization constants, the base parameters
    kept in floating point (by kind: embeddings, lm_head, norms, biases, other), adapters and buffers."""
    import torch.nn as nn

    model = meta.model
    kinds: dict[int, str] = {}
    head = meta.output_embeddings()
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if id(p) in kinds:
                continue
            if module is head:
                kinds[id(p)] = "lm_head"
            elif isinstance(module, nn.Embedding):
                kinds[id(p)] = "embeddings"
            elif "norm" in type(module).__name__.lower() or name.rsplit(".", 1)[-1].startswith(("ln", "norm")):
                kinds[id(p)] = "norms"
            else:
                kinds[id(p)] = "other"
    out = {"quantized": 0, "quantization_constants": 0, "unquantized": 0, "adapter": 0, "buffers": 0,
           "unquantized_by_kind": {}, "n_quantized_layers": 0, "quantized_params": 0}
    by_kind: dict[str, int] = out["unquantized_by_kind"]
    for name, p in model.named_parameters():
        if id(p) in meta.quantized:
            packed, constants = nf4_bytes(p.numel(), meta.double_quant)
            out["quantized"] += packed
            out["quantization_constants"] += constants
            out["n_quantized_layers"] += 1
            out["quantized_params"] += p.numel()
            continue
        size = p.numel() * p.element_size()
        if _is_adapter(name):
            out["adapter"] += size
            continue
        kind = "biases" if name.endswith(".bias") and kinds.get(id(p)) == "other" else kinds.get(id(p), "other")
        out["unquantized"] += size
        by_kind[kind] = by_kind.get(kind, 0) + size
    seen = set()
    for b in model.buffers():
        if id(b) not in seen:
            seen.add(id(b))
            out["buffers"] += b.numel() * b.element_size()
    return out


def trainable_tensors(meta: MetaModel) -> list[tuple[int, int]]:
    """(numel, bytes per element) of every trainable parameter, tied weights once."""
    return [(p.numel(), p.element_size()) for _, p in meta.model.named_parameters() if p.requires_grad]


def _is_adapter(name: str) -> bool:
    return any(key in name for key in (".lora_", "lora_magnitude_vector", "modules_to_save", "trainable_tokens"))


def parameter_count(meta: MetaModel) -> dict[str, int]:
    """``{"trainable", "total"}`` as PEFT counts them (4-bit weights unpacked)."""
    trainable = sum(p.numel() for _, p in meta.model.named_parameters() if p.requires_grad)
    total = sum(p.numel() for _, p in meta.model.named_parameters())
    return {"trainable": trainable, "total": total}


def decoder_layers(model) -> list:
    """The blocks transformers checkpoints one by one (``GradientCheckpointingLayer``), in order."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]

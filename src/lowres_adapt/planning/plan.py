"""Will this recipe fit? The memory (and time) one training step needs, before any weights are downloaded.

``plan_memory`` builds the model from its config on the meta device (no weights), adapts it as the
recipe would, and returns a :class:`MemoryPlan`: the bytes of the weights as stored (fp32 / bf16, or NF4
with double quantization and its constants, with the layers that stay unquantized), the adapter
weights, the gradients, the optimizer states, and the activations, logits and temporaries of one
simulated training step at its peak; a fits / does-not-fit verdict for a device and the largest batch
that fits; the same per device under DDP, DeepSpeed ZeRO 1-3 or FSDP across several devices; and the
step's FLOPs for a time estimate.

How each number is made (see ``_model`` and ``_step`` for the details):

- weights, gradients, optimizer states: exact, from the meta model's parameters and the storage rules
  of bitsandbytes (NF4), PEFT (adapter dtypes, fp32 upcast of unquantized layers under QLoRA), torch
  AdamW and bitsandbytes' 8-bit / paged optimizers;
- activations, logits, temporaries: a forward and backward pass of the meta model with every storage's
  creation and release followed op by op (the peak of what the step holds), with fused attention,
  4-bit layers and autocast stood in for as the device runs them.

What the plan counts is tensor memory, what ``torch.cuda.max_memory_allocated`` reports. The CUDA
context, the allocator's cache and fragmentation and kernels' workspaces come on top: ``margin`` keeps a
share of the device free for them (10 % by default, a rule of thumb, not a measurement).

Example::

    >>> import transformers, lowres_adapt as la
    >>> cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    ...                                num_attention_heads=4, vocab_size=1000)
    >>> plan = la.plan_memory(cfg, la.QLoRA(r=8), batch_size=2, block_size=128, device_memory="8MB")
    >>> plan.terms["optimizer_states"] == 2 * 4 * plan.parameters["trainable"] + 4 * 16  # 16 fp32 LoRA matrices
    True
    >>> plan.fits, plan.largest_batch_size > 2
    (True, True)
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .._utils import did_you_mean

__all__ = ["MemoryPlan", "parse_bytes", "plan_for_run", "plan_memory"]

# Optimizers the plan knows, by the name ``TrainingArguments(optim=...)`` gives them, and our short names.
OPTIMIZERS = ("adamw", "adamw_torch", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "sgd")
_OPTIM_ALIASES = {"adamw_torch_fused": "adamw", "adamw_bnb_8bit": "adamw_8bit", "adamw_8bit": "adamw_8bit",
                  "paged_adamw_32bit": "paged_adamw", "paged_adamw_8bit": "paged_adamw_8bit",
                  "adamw_torch": "adamw_torch", "sgd": "sgd", "adamw": "adamw", "paged_adamw": "paged_adamw"}
SHARDING = ("ddp", "zero1", "zero2", "zero3", "fsdp", "fsdp_grad_op")
_MIN_8BIT = 4096  # bitsandbytes: smaller tensors keep fp32 states in the 8-bit optimizers
_PAGED_MIN = 100_000  # bitsandbytes pages states of tensors with at least this many values
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(value: int | float | str) -> int:
    """Returns a byte count from ``24GiB``, ``24GB`` (10**9), ``24G`` (= GiB, as ``nvidia-smi`` prints) or a number.

    Example::

        >>> from lowres_adapt.planning import parse_bytes
        >>> parse_bytes("24GiB"), parse_bytes("80GB"), parse_bytes("1.5G"), parse_bytes(1024)
        (25769803776, 80000000000, 1610612736, 1024)
    """
    if isinstance(value, bool):
        raise ValueError(f"a memory size must be a number of bytes or a string like '24GB', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"a memory size must be positive, got {value!r}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ValueError(f"cannot read {value!r} as a memory size; write e.g. '24GB', '24GiB', '80G' or a byte count")
    size = float(m.group(1)) * _UNITS[unit]
    if size <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return int(size)


def _gib(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


@dataclass
class MemoryPlan:
    """What ``plan_memory`` returns: bytes per device at the peak of a training step, and the verdict.

    ``terms`` adds up to ``total``: ``weights`` (base, as stored), ``adapter_weights``, ``optimizer_states``,
    and what the step holds at its peak: ``gradients``, ``activations``, ``logits``, ``temporaries``
    (gradients of activations, recomputation, casts, optimizer temporaries). ``gradients_total`` is every
    gradient at the end of backward (the peak may come before they all exist). ``weights_detail`` splits
    the weights: NF4 packed bytes, quantization constants, unquantized layers by kind, buffers.

    Example::

        >>> import lowres_adapt as la
        >>> plan = la.MemoryPlan(terms={"weights": 2**30}, total=2**30, device_memory=2**31, fits=True)
        >>> plan.to_dict()["fits"]
        True
    """

    terms: dict[str, int] = field(default_factory=dict)
    total: int = 0
    device_memory: int | None = None
    margin: float = 0.1
    fits: bool | None = None
    largest_batch_size: int | None = None
    weights_detail: dict[str, Any] = field(default_factory=dict)
    gradients_total: int = 0
    parameters: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    flops_per_step: int = 0
    flops_detail: dict[str, int] = field(default_factory=dict)
    tokens_per_step: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def usable_memory(self) -> int | None:
        """Device memory the tensors may take: ``device_memory x (1 - margin)``."""
        return None if self.device_memory is None else int(self.device_memory * (1 - self.margin))

    def to_dict(self) -> dict[str, Any]:
        """Returns the plan as a JSON-friendly dict (``usable_memory`` included).

        Example::

            >>> import lowres_adapt as la
            >>> sorted(la.MemoryPlan().to_dict())[:4]
            ['device_memory', 'fits', 'flops_detail', 'flops_per_step']
        """
        return {**asdict(self), "usable_memory": self.usable_memory}

    def estimate_seconds(self, tokens: int, flops_per_second: float) -> float:
        """Returns an ESTIMATE of the seconds ``tokens`` training tokens take at ``flops_per_second``.

        ``flops_per_second`` is what the device achieves on this step, not its peak: e.g. the bf16 peak
        times a model-FLOPs utilisation you have seen (often 0.3-0.5 on large GPUs), or
        ``tokens_per_second x flops_per_step / tokens_per_step`` of a short run of the same setup.
        Data loading, evaluation and the optimizer step are not counted.

        Example::

            >>> import lowres_adapt as la
            >>> la.MemoryPlan(flops_per_step=6e12, tokens_per_step=1000).estimate_seconds(10**6, 1e14)
            60.0
        """
        if not (isinstance(flops_per_second, (int, float)) and flops_per_second > 0):
            raise ValueError(f"flops_per_second must be a positive number, got {flops_per_second!r}")
        if not self.tokens_per_step:
            raise ValueError("this plan has no step FLOPs (tokens_per_step is 0)")
        return tokens / self.tokens_per_step * self.flops_per_step / flops_per_second

    def to_markdown(self) -> str:
        """Returns the breakdown as a Markdown table with the verdict under it.

        Example::

            >>> import lowres_adapt as la
            >>> print(la.MemoryPlan(terms={"weights": 2**30}, total=2**30).to_markdown())
            | term | memory |
            | --- | ---: |
            | weights | 1.00 GiB |
            | **total (peak of a step)** | **1.00 GiB** |
        """
        rows = ["| term | memory |", "| --- | ---: |"]
        for key, value in self.terms.items():
            label = key.replace("_", " ")
            if key == "weights" and self.weights_detail.get("quantized"):
                d = self.weights_detail
                label += (f" (NF4 {_gib(d['quantized'])} + constants {_gib(d['quantization_constants'])}; "
                          f"unquantized {_gib(d['unquantized'])})")
            rows.append(f"| {label} | {_gib(value)} |")
        rows.append(f"| **total (peak of a step)** | **{_gib(self.total)}** |")
        out = "\n".join(rows)
        if self.device_memory is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            out += (f"\n\n{verdict} in {_gib(self.device_memory)} ({_gib(self.usable_memory)} usable with a "
                    f"{self.margin:.0%} margin); largest batch that fits: {self.largest_batch_size}")
        for note in self.notes:
            out += f"\n- {note}"
        return out


def plan_memory(model_or_config, recipe, *, batch_size: int, block_size: int, dtype: str | None = None,
                gradient_checkpointing: bool | None = None, optimizer: str = "adamw",
                device_memory: int | str | None = None, device: str = "cuda", mixed_precision: str | None = "auto",
                gradient_accumulation_steps: int = 1, sharding: str | None = None, num_devices: int = 1,
                margin: float = 0.1, max_batch_size: int = 1024, packing: str = "isolated") -> MemoryPlan:
    """Returns a :class:`MemoryPlan`: the bytes one training step of ``recipe`` needs per device, by term.

    ``model_or_config``: a transformers config, a loaded model, a model folder, a ``config.json`` or a hub
    id (only the config is read). ``dtype``: the base weights' dtype (``"float32"``, ``"bfloat16"``,
    ``"float16"``; QLoRA: the compute dtype); default as ``recipe.train`` picks it on ``device``
    (bf16 for LoRA/QLoRA on a GPU, fp32 for full fine-tuning and on CPU). ``mixed_precision``: autocast
    dtype, ``"auto"`` = bf16 on ``device="cuda"`` (Trainer's ``bf16=True`` on a bf16 GPU), none on CPU.
    ``gradient_checkpointing``: default the recipe's (on for QLoRA). ``optimizer``: ``adamw`` (torch,
    fused: Trainer's default), ``adamw_torch`` (foreach, one fp32 temporary per state), ``adamw_8bit``,
    ``paged_adamw``, ``paged_adamw_8bit`` (bitsandbytes) or ``sgd``; Trainer's ``optim`` names work too.
    ``device_memory`` (e.g. ``"24GB"``) gives ``fits`` and ``largest_batch_size``. ``sharding``:
    ``"ddp"``, ``"zero1"``, ``"zero2"``, ``"zero3"``, ``"fsdp"`` (full shard) or ``"fsdp_grad_op"`` across
    ``num_devices``; ``batch_size`` is per device. ``packing``: as ``recipe.train`` packs the blocks;
    ``"isolated"`` (its default) adds the block-diagonal attention mask, which the fused attention
    kernels copy per layer (``batch x block x block`` in the attention dtype, unless checkpointed).

    Example::

        >>> import transformers, lowres_adapt as la
        >>> cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=1000)
        >>> full = la.plan_memory(cfg, la.FullFineTuning(), batch_size=4, block_size=128, device="cpu")
        >>> full.terms["optimizer_states"] == 2 * full.terms["weights"] + 4 * 28   # AdamW: 2 states, 28 steps
        True
        >>> zero3 = la.plan_memory(cfg, la.FullFineTuning(), batch_size=4, block_size=128, device="cpu",
        ...                        sharding="zero3", num_devices=4)
        >>> zero3.terms["optimizer_states"] == full.terms["optimizer_states"] // 4
        True
    """
    import torch

    from ..recipes import AdaptationRecipe
    from . import _model, _step

    if not isinstance(recipe, AdaptationRecipe):
        raise TypeError(f"recipe must be an AdaptationRecipe (FullFineTuning, LoRA, QLoRA), got {type(recipe).__name__}")
    for name, value, low in (("batch_size", batch_size, 1), ("block_size", block_size, 2),
                             ("gradient_accumulation_steps", gradient_accumulation_steps, 1),
                             ("num_devices", num_devices, 1), ("max_batch_size", max_batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' (a GPU) or 'cpu', got {device!r}")
    optim = _OPTIM_ALIASES.get(str(optimizer).lower())
    if optim is None:
        raise ValueError(f"unknown optimizer {optimizer!r}{did_you_mean(str(optimizer), list(_OPTIM_ALIASES))}; "
                         f"known: {', '.join(OPTIMIZERS)}")
    if sharding is not None and sharding not in SHARDING:
        raise ValueError(f"unknown sharding {sharding!r}{did_you_mean(str(sharding), SHARDING)}; known: None, "
                         f"{', '.join(SHARDING)}")
    if sharding is not None and num_devices < 2:
        raise ValueError(f"sharding={sharding!r} needs num_devices >= 2, got {num_devices}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    from ..data import PACKINGS

    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}{did_you_mean(str(packing), PACKINGS)}")
    capacity = None if device_memory is None else parse_bytes(device_memory)
    if dtype is None:
        dtype = "bfloat16" if device == "cuda" and (recipe._quantize() or recipe._adapters) else "float32"
    if dtype not in _model._DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_model._DTYPES)} or None, got {dtype!r}")
    if mixed_precision == "auto":
        mixed_precision = "bfloat16" if device == "cuda" else None
    if mixed_precision in (False, "no", "none", "fp32", "float32"):
        mixed_precision = None
    mixed_precision = {"bf16": "bfloat16", "fp16": "float16"}.get(mixed_precision, mixed_precision)
    if mixed_precision not in (None, "bfloat16", "float16"):
        raise ValueError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or None, got {mixed_precision!r}")
    if gradient_checkpointing is None:
        gradient_checkpointing = recipe._default_checkpointing()

    config = _model.resolve_config(model_or_config)
    from ..modeling import context_length

    ctx = context_length(config)
    if ctx is not None and block_size > ctx:
        raise ValueError(f"block_size={block_size} is larger than the model's context of {ctx} tokens; "
                         f"use block_size <= {ctx}")
    meta = _model.build_meta_model(config, recipe, dtype)
    wt = _model.weight_terms(meta)
    tensors = _model.trainable_tensors(meta)
    states, pageable, optim_temp = optimizer_state_bytes(tensors, optim, device)
    grads = sum(n * e for n, e in tensors)
    autocast = getattr(torch, mixed_precision) if mixed_precision else None
    quantized = recipe._quantize()
    notes: list[str] = []

    def step(b: int) -> tuple[int, dict[str, int], Any]:
        trace = _step.simulate_step(meta, b, block_size, device=device, checkpointing=gradient_checkpointing,
                                    autocast=autocast, packing=packing)
        return _assemble(wt, states, grads, optim_temp, trace, sharding, num_devices, quantized,
                         gradient_accumulation_steps, meta) + (trace,)

    total, terms, trace = step(batch_size)
    usable = None if capacity is None else int(capacity * (1 - margin))
    largest = None
    if usable is not None:
        largest = _largest_batch(lambda b: step(b)[0], usable, batch_size, total, max_batch_size)
    if optim.startswith("paged") and device == "cuda" and pageable:
        notes.append(f"paged optimizer: {_gib(pageable)} of the states live in unified memory and move to host "
                     "memory when the GPU runs short (slower, but not out of memory)")
    if quantized and sharding in ("zero3", "fsdp"):
        notes.append("QLoRA loads one full 4-bit copy per process: the 4-bit weights are not sharded")
    if trace.attention == "math":
        notes.append("attention runs PyTorch's math kernel here (CPU with attention dropout): the block x block "
                     "probabilities are materialized")
    if usable is not None and largest == 0:
        tries = [t for t, used in (("QLoRA", quantized), ("gradient checkpointing", gradient_checkpointing),
                                   ("an 8-bit optimizer", optim.endswith("8bit")), ("sharding", sharding is not None))
                 if not used]
        notes.append("even batch_size=1 does not fit: try a smaller block_size" + "".join(f", {t}" for t in tries))
    if usable is not None and total > usable and total - pageable <= usable:
        notes.append("fits only if the paged optimizer states move to host memory")
    counts = _model.parameter_count(meta)
    return MemoryPlan(
        terms=terms, total=total, device_memory=capacity, margin=margin,
        fits=None if usable is None else total <= usable, largest_batch_size=largest,
        weights_detail={k: wt[k] for k in ("quantized", "quantization_constants", "unquantized", "buffers",
                                           "unquantized_by_kind", "n_quantized_layers", "quantized_params")},
        gradients_total=grads, parameters=counts,
        settings={"recipe": recipe.to_dict(), "model_type": getattr(config, "model_type", None),
                  "batch_size": batch_size, "block_size": block_size, "dtype": dtype,
                  "mixed_precision": mixed_precision, "gradient_checkpointing": bool(gradient_checkpointing),
                  "optimizer": optim, "device": device, "sharding": sharding, "num_devices": num_devices,
                  "gradient_accumulation_steps": gradient_accumulation_steps, "attention": trace.attention,
                  "packing": packing},
        flops_per_step=trace.flops_matmul + trace.flops_attention,
        flops_detail={"matmul": trace.flops_matmul, "attention": trace.flops_attention},
        tokens_per_step=batch_size * block_size, notes=notes,
    )


def plan_for_run(model_or_config, recipe, metrics: dict[str, Any]) -> MemoryPlan:
    """Returns the plan of a finished run from its ``metrics`` (what ``recipe.train`` recorded), to put the
    predicted peak next to the measured ``metrics["step_peak_memory_bytes"]``.

    Example::

        >>> import tempfile, lowres_adapt as la
        >>> path = la.save_tiny_checkpoint(tempfile.mkdtemp(), "gpt2", la.sample_corpus("ba"), vocab_size=300,
        ...                                hidden_size=32, num_heads=2, max_positions=64)
        >>> metrics = {"device": "cpu", "batch_size": 2, "block_size": 32, "dtype": "float32", "bf16": False,
        ...            "gradient_checkpointing": False, "optimizer": "adamw_torch_fused", "world_size": 1,
        ...            "gradient_accumulation_steps": 1, "packing_efficiency": 1.0}
        >>> plan_for_run(path, la.LoRA(r=4), metrics).settings["device"]
        'cpu'
    """
    if metrics.get("packing_efficiency", 1.0) is None:
        raise ValueError("the run trained on pre-tokenized examples of varying length: there is no block size "
                         "to plan for")
    optimizer = str(metrics.get("optimizer") or "adamw")
    optimizer = "adamw_torch" if optimizer == "custom" else optimizer  # LoRA+: a torch AdamW of its own
    world = int(metrics.get("world_size") or 1)
    return plan_memory(
        model_or_config, recipe, batch_size=int(metrics["batch_size"]), block_size=int(metrics["block_size"]),
        dtype=metrics.get("dtype"), gradient_checkpointing=bool(metrics.get("gradient_checkpointing")),
        optimizer=optimizer, device="cuda" if str(metrics.get("device", "cpu")).startswith("cuda") else "cpu",
        mixed_precision="bfloat16" if metrics.get("bf16") else None,
        gradient_accumulation_steps=int(metrics.get("gradient_accumulation_steps") or 1),
        sharding="ddp" if world > 1 else None, num_devices=world,
        # runs recorded before isolated packing have no "packing": they trained concatenated
        packing=metrics.get("packing") or "concatenated",
    )


def optimizer_state_bytes(tensors: list[tuple[int, int]], optimizer: str, device: str = "cuda") -> tuple[int, int, int]:
    """(state bytes, pageable bytes, step temporaries) of ``optimizer`` for trainable tensors ``(numel, bytes/el)``.

    torch AdamW keeps ``exp_avg`` and ``exp_avg_sq`` in the parameter's dtype and a 4-byte fp32 ``step``
    per tensor; the foreach implementation (``adamw_torch`` on a GPU) makes one temporary the size of the
    second-moment states (``_foreach_sqrt``). bitsandbytes' 8-bit AdamW keeps two uint8 states plus one
    fp32 absmax per 256 values for tensors of at least 4,096 values (fp32 states below that), and two
    shared 256-entry fp32 quantization maps; the paged variants page the states of tensors with at least
    100,000 values (CUDA only). SGD without momentum keeps nothing.

    Example::

        >>> from lowres_adapt.planning import optimizer_state_bytes
        >>> optimizer_state_bytes([(4096 * 16, 2), (64, 2)], "adamw")       # 2 x 2 bytes x n + 4 per tensor
        (262408, 0, 0)
        >>> optimizer_state_bytes([(4096 * 16, 2), (64, 2)], "adamw_8bit")  # 2n + 8n/256; 8n; 2 qmaps
        (135680, 0, 0)
    """
    if optimizer == "sgd":
        return 0, 0, 0
    if optimizer in ("adamw", "adamw_torch"):
        states = sum(2 * n * e + 4 for n, e in tensors)
        temp = sum(n * e for n, e in tensors) if (optimizer == "adamw_torch" and device == "cuda") else 0
        return states, 0, temp
    eight = optimizer.endswith("8bit")
    states = pageable = 0
    any_8bit = False
    for n, _ in tensors:
        if eight and n >= _MIN_8BIT:
            size = 2 * n + 2 * 4 * math.ceil(n / 256)
            any_8bit = True
        else:
            size = 2 * 4 * n
        states += size
        if optimizer.startswith("paged") and device == "cuda" and n >= _PAGED_MIN:
            pageable += size
    if any_8bit:
        states += 2 * 256 * 4  # qmap1 ("dynamic") and qmap2 ("udynamic"), shared by all tensors
    return states, pageable, 0


def _assemble(wt, states, grads, optim_temp, trace, sharding, n, quantized, accumulation, meta):
    """(total, terms) per device from the exact terms and the simulated step."""
    shard_w = sharding in ("zero3", "fsdp") and not quantized
    shard_g = sharding in ("zero2", "zero3", "fsdp", "fsdp_grad_op")
    shard_s = sharding is not None and sharding != "ddp"
    base = wt["quantized"] + wt["quantization_constants"] + wt["unquantized"] + wt["buffers"]
    weights = math.ceil(base / n) if shard_w else base
    adapter = math.ceil(wt["adapter"] / n) if shard_w else wt["adapter"]
    opt = math.ceil(states / n) if shard_s else states
    extra = 0
    if shard_w:  # a sharded layer is gathered in full for its forward and backward: the largest one
        extra = _largest_layer_bytes(meta)
    if sharding == "ddp":  # DDP reduces gradients through bucket copies of them (gradient_as_bucket_view=False)
        extra = grads
    def share(x: int) -> int:
        return math.ceil(x / n) if shard_g else x

    held = share(grads) if accumulation > 1 else 0  # earlier micro-batches' gradients stay
    in_step = {"gradients": share(trace.gradients) + held, "activations": trace.activations,
               "logits": trace.logits, "temporaries": trace.temporaries + extra}
    step_peak = sum(in_step.values())
    opt_phase = share(grads) + optim_temp + extra
    if opt_phase > step_peak:  # the optimizer step is the peak: all gradients, the optimizer's temporaries
        in_step = {"gradients": share(grads), "activations": 0, "logits": 0, "temporaries": optim_temp + extra}
    terms = {"weights": weights, "adapter_weights": adapter, "optimizer_states": opt, **in_step}
    return sum(terms.values()), terms


def _largest_layer_bytes(meta) -> int:
    from ._model import decoder_layers

    sizes = [sum(p.numel() * p.element_size() for p in layer.parameters()) for layer in decoder_layers(meta.model)]
    return max(sizes, default=0)


def _largest_batch(total_at, usable: int, b0: int, t0: int, cap: int) -> int:
    """The largest batch size whose total fits ``usable``: a linear guess from two points, then checked."""
    cache = {b0: t0}

    def fits(b: int) -> bool:
        if b not in cache:
            cache[b] = total_at(b)
        return cache[b] <= usable

    if not fits(1):
        return 0
    t1 = cache[1]
    t2 = total_at(2) if 2 not in cache else cache[2]
    cache[2] = t2
    slope = max(t2 - t1, 1)
    guess = max(1, min(cap, 1 + (usable - t1) // slope))
    lo, hi = (guess, None) if fits(guess) else (1, guess)
    if hi is None:  # grow until it does not fit (or the cap)
        step = 1
        while lo < cap:
            nxt = min(cap, lo + step)
            if not fits(nxt):
                hi = nxt
                break
            lo, step = nxt, step * 2
        if hi is None:
            return cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo

"""One training step of the adapted meta model, simulated to find the memory it needs at its peak.

The model lives on the meta device (shapes and dtypes, no data, no arithmetic). A forward pass with
labels and a backward pass run under a ``TorchDispatchMode`` that sees every tensor an operation
creates; a weak-reference finalizer on each new storage sees when it is freed. Their running sum is the
memory the step holds on top of the weights and optimizer states, op by op, as the real step would hold
it: the activations autograd saves, the logits and the loss's fp32 copies, the gradients of activations
while backward runs, the parameters' gradients as they appear, and under gradient checkpointing the
recomputed layer. Nothing here is a per-architecture formula: whatever the model's code does, the trace
follows, including PEFT's LoRA layers (dropout, DoRA's weight norm).

A meta pass cannot know three things about real devices; they are settled here:

- **attention kernel**: on the meta device ``scaled_dot_product_attention`` runs its math fallback, which
  materializes the ``heads x block x block`` probabilities. Real devices run a fused kernel
  (FlashAttention / memory-efficient on CUDA, flash on CPU) that saves q, k, v, the output and an fp32
  log-sum-exp per query; a stand-in with the same allocations replaces it. On CPU with attention
  dropout the CPU kernel falls back to the math path, and so does the simulation (``device="cpu"``);
- **4-bit layers** (QLoRA): ``bnb.nn.Linear4bit`` casts its input to the compute dtype, dequantizes the
  weight into a temporary for the matmul (forward and backward), keeps only the packed weight for
  backward and casts the output back; a stand-in does the same allocations on the frozen meta weight;
- **mixed precision** (``autocast``): meta tensors are not autocast, so matmuls get their inputs cast to
  the autocast dtype (casts of trainable weights cached for the step, as autocast caches them) and the
  ops autocast runs in fp32 (softmax, log-softmax, norms, losses) get fp32 inputs.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any

from ..modeling import disable_checkpointing, enable_checkpointing


@dataclass
class StepTrace:
    """Bytes the step holds on top of weights and optimizer states, at its peak and by kind there."""

    peak: int  # forward + backward peak
    activations: int  # at the peak: tensors saved for backward outside the LM head and loss
    logits: int  # at the peak: tensors as wide as the vocabulary (logits, log-probabilities, their gradients)
    gradients: int  # at the peak: parameters' gradients already there
    temporaries: int  # at the peak: everything else (gradients of activations, recomputation, casts)
    grads_after: int  # parameters' gradients when backward ends
    attention: str  # "fused" or "math"
    logits_numel: int
    flops_matmul: int = 0  # forward + backward (+ recomputation), as torch.utils.flop_counter counts them
    flops_attention: int = 0  # the attention kernels' (non-causal count, as the flop counter's sdpa formula)


class _Live:
    """Live bytes of the storages created under it, op by op; which storages were alive at the peak."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.clock = 0  # one tick per tensor created
        self.peak_clock = 0
        self.alive: dict[int, int] = {}  # id(storage) -> uid
        self.records: list[list] = []  # uid -> [bytes, created, freed or None, last dim]

    def track(self, t) -> None:
        st = t.untyped_storage()
        if id(st) in self.alive:
            return
        n = st.nbytes()
        self.clock += 1
        uid = len(self.records)
        self.records.append([n, self.clock, None, t.shape[-1] if t.dim() else 0])
        self.alive[id(st)] = uid
        self.live += n
        weakref.finalize(st, self._free, id(st), uid)
        if self.live > self.peak:
            self.peak, self.peak_clock = self.live, self.clock

    def _free(self, key: int, uid: int) -> None:
        self.alive.pop(key, None)
        record = self.records[uid]
        record[2] = self.clock
        self.live -= record[0]

    def uid(self, t) -> int | None:
        return self.alive.get(id(t.untyped_storage()))

    def at_peak(self):
        """(uid, bytes, last dim) of every storage alive when the peak was reached."""
        for uid, (n, created, freed, last) in enumerate(self.records):
            # the peak is read right after the allocation at peak_clock: what is freed after it, before the
            # next allocation, carries freed == peak_clock and was alive at the peak
            if created <= self.peak_clock and (freed is None or freed >= self.peak_clock):
                yield uid, n, last


def simulate_step(meta, batch_size: int, block_size: int, *, device: str = "cuda", checkpointing: bool = False,
                  autocast: Any = None, packing: str = "concatenated") -> StepTrace:
    """Runs forward and backward of ``meta.model`` on meta inputs of ``batch_size x block_size`` tokens.

    ``packing="isolated"``: the blocks hold several documents with restarting position ids, so
    transformers builds a block-diagonal boolean mask (batch x block x block, once per step) and the
    fused attention kernels, given a mask, save a copy of it in the attention dtype for backward in
    every layer (measured on CPU: ``tests/test_memory_plan.py``; the CUDA memory-efficient kernel keeps
    its ``attn_bias`` the same way). ``"concatenated"``: one causal sequence per row, no mask.

    Not thread-safe: while it runs, ``torch.nn.functional.scaled_dot_product_attention`` (and with
    ``autocast`` the matmuls and fp32 ops) are replaced by the stand-ins in the whole process.
    """
    from unittest import mock

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import flop_registry

    model, config = meta.model, meta.config
    dropout = float(getattr(config, "attention_dropout", getattr(config, "attn_pdrop", 0.0)) or 0.0)
    fused = device != "cpu" or dropout == 0.0
    live = _Live()
    grads_of = {id(p) for p in model.parameters() if p.requires_grad}

    class Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            count = flop_registry.get(func._overloadpacket)
            if count is not None:
                flops[0] += count(*args, **kwargs, out_val=out)
            # views and in-place results share an input's storage: only new storages are new memory
            given = {id(a.untyped_storage()) for a in tree_leaves((args, kwargs))
                     if isinstance(a, torch.Tensor) and a.device.type == "meta"}
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type == "meta" and id(t.untyped_storage()) not in given:
                    live.track(t)
            return out

    patches = _stand_in_patches(fused, autocast, align=16 if device == "cuda" else 1)
    _ATTENTION_FLOPS[0] = 0
    # FLOPs counted with torch.utils.flop_counter's formulas, in this mode: FlopCounterMode itself tracks
    # modules with hooks that keep tensors alive, which would change the memory being measured
    flops = [0]
    saved: set[int] = set()

    def pack(t):
        uid = live.uid(t)
        if uid is not None:
            saved.add(uid)
        return t

    handles = _quantized_stand_ins(model, meta)
    if checkpointing:
        enable_checkpointing(model)
    ids = torch.zeros((batch_size, block_size), dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*checkpointing.*deprecated", category=FutureWarning)
        try:
            # transformers looks for several documents packed into one row by reading the position ids,
            # which a meta tensor cannot show: tell it the answer the packing gives (documents in every row
            # when isolated; one sequence per row when concatenated). It also warns when a pad token shows
            # in the ids without an attention mask: data too
            def packed_rows(position_ids):
                if packing != "isolated":
                    return None
                return torch.zeros(position_ids.shape, dtype=torch.long, device=position_ids.device)

            with mock.patch("transformers.masking_utils.find_packed_sequence_indices", side_effect=packed_rows), \
                    mock.patch("transformers.modeling_utils.PreTrainedModel.warn_if_padding_and_no_attention_mask"), \
                    patches, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), Track():
                patches.caching = True
                out = model(input_ids=ids, labels=ids)
                loss = out.loss
                vocab = out.logits.shape[-1] if getattr(out, "logits", None) is not None else config.vocab_size
                del out  # Trainer's compute_loss keeps only the loss
                patches.caching = False
                patches.cache.clear()  # autocast drops its cast cache when the forward's context exits
                loss.backward()
                del loss
        finally:
            for h in handles:
                h.remove()
            if checkpointing:
                disable_checkpointing(model)
    grad_uids = set()
    grads_after = 0
    for p in model.parameters():
        if id(p) in grads_of and p.grad is not None:
            uid = live.uid(p.grad)
            if uid is not None:
                grad_uids.add(uid)
            grads_after += p.grad.untyped_storage().nbytes()
            p.grad = None
    parts = {"activations": 0, "logits": 0, "gradients": 0, "temporaries": 0}
    for uid, n, last in live.at_peak():
        if uid in grad_uids:
            parts["gradients"] += n
        elif last == vocab:  # logits, log-probabilities and their gradients
            parts["logits"] += n
        elif uid in saved:
            parts["activations"] += n
        else:
            parts["temporaries"] += n
    return StepTrace(peak=live.peak, grads_after=grads_after, attention="fused" if fused else "math",
                     logits_numel=batch_size * block_size * int(vocab), flops_matmul=int(flops[0]),
                     flops_attention=_ATTENTION_FLOPS[0], **parts)


class _stand_in_patches:
    """Context manager: ``torch.nn.functional`` attention (and, with ``autocast``, the matmuls and fp32 ops)
    replaced by the stand-ins for the duration of the simulation. Module attributes rather than a
    ``TorchFunctionMode``: the mode would not be active when gradient checkpointing recomputes a layer."""

    def __init__(self, fused: bool, autocast, align: int = 1) -> None:
        self.fused, self.autocast, self.align = fused, autocast, align
        self.cache: dict[int, Any] = {}
        self.caching = False  # on during the forward; a checkpointed layer's recomputation casts afresh
        self._saved: list = []

    def _cast(self, a):
        import torch

        dtype = self.autocast
        if not (torch.is_tensor(a) and a.is_floating_point()) or a.dtype == dtype:
            return a
        if self.caching and a.is_leaf and a.requires_grad:  # autocast casts each trainable weight once
            if id(a) not in self.cache:
                self.cache[id(a)] = a.to(dtype)
            return self.cache[id(a)]
        return a.to(dtype)

    def __enter__(self):
        import torch
        import torch.nn.functional as F

        def wrap(owner, name, make):
            original = getattr(owner, name)
            self._saved.append((owner, name, original))
            setattr(owner, name, make(original))

        if self.autocast is not None:
            def low(fn):
                return lambda *args, **kw: fn(*(self._cast(a) for a in args), **kw)

            def high(fn):
                return lambda *args, **kw: fn(*(a.float() if torch.is_tensor(a) and a.is_floating_point() else a
                                                for a in args), **kw)

            for name in ("linear",):
                wrap(F, name, low)
            for name in ("addmm", "matmul", "bmm", "baddbmm"):
                wrap(torch, name, low)
            for name in ("softmax", "log_softmax", "layer_norm", "cross_entropy"):
                wrap(F, name, high)
        sdpa = F.scaled_dot_product_attention

        def attention(q, k, v, *args, **kw):
            if self.autocast is not None:
                q, k, v = (self._cast(t) for t in (q, k, v))
            if self.fused:
                mask = kw.get("attn_mask", args[0] if args else None)
                bias = None
                if mask is not None:  # the kernels' copy of the mask in q's dtype (last dim aligned on CUDA)
                    last = -(-mask.shape[-1] // self.align) * self.align
                    bias = q.new_empty((*mask.shape[:-1], last))
                return _fused_attention()(q, k, v, bias)
            return sdpa(q, k, v, *args, **kw)

        self._saved.append((F, "scaled_dot_product_attention", sdpa))
        F.scaled_dot_product_attention = attention
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()
        self.cache.clear()


_FUSED = None
_ATTENTION_FLOPS = [0]


def _fused_attention():
    """A function with a fused attention kernel's allocations: out, fp32 log-sum-exp (and the mask's copy
    when there is a mask), saved for backward; grads of q, k, v."""
    global _FUSED
    if _FUSED is None:
        import torch

        class FusedAttention(torch.autograd.Function):
            @staticmethod
            def forward(ctx, q, k, v, bias):
                from torch.utils.flop_counter import sdpa_flop_count

                _ATTENTION_FLOPS[0] += sdpa_flop_count(q.shape, k.shape, v.shape)
                b, h, s, _ = q.shape
                # the kernels write the output as (batch, block, heads, dim): the transpose back that
                # attention code does next is then free, as on the device
                out = q.new_empty((b, s, h, v.shape[-1])).transpose(1, 2)
                lse = q.new_empty((b, h, s), dtype=torch.float32)
                ctx.save_for_backward(q, k, v, out, lse, *(() if bias is None else (bias,)))
                return out

            @staticmethod
            def backward(ctx, grad):
                from torch.utils.flop_counter import sdpa_backward_flop_count

                q, k, v, _, lse = ctx.saved_tensors[:5]
                _ATTENTION_FLOPS[0] += sdpa_backward_flop_count(grad.shape, q.shape, k.shape, v.shape)
                delta = torch.empty_like(lse)  # the kernels' row sums of grad * out
                del delta
                return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), None

        _FUSED = FusedAttention.apply
    return _FUSED


def _quantized_stand_ins(model, meta) -> list:
    """Makes each base layer QLoRA quantizes behave like ``bnb.nn.Linear4bit`` for memory; returns undo handles."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if not meta.quantized:
        return []
    cdt = meta.compute_dtype

    class Dequantized(torch.autograd.Function):
        """x @ W^T with W dequantized into a temporary, forward and backward; nothing saved but the weight."""

        @staticmethod
        def forward(ctx, x, weight, transposed):
            ctx.weight, ctx.transposed = weight, transposed
            w = torch.empty(weight.shape, dtype=cdt, device=x.device)  # the dequantized copy
            return x @ (w if transposed else w.t())

        @staticmethod
        def backward(ctx, grad):
            w = torch.empty(ctx.weight.shape, dtype=cdt, device=grad.device)
            return grad @ (w.t() if ctx.transposed else w), None, None

    undo = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None or id(weight) not in meta.quantized or hasattr(module, "base_layer"):
            continue  # (a PEFT layer wrapping a quantized base shows the base's weight too)
        transposed = isinstance(module, Conv1D)

        def forward(x, _m=module, _t=transposed):
            out = Dequantized.apply(x.to(cdt), _m.weight, _t)
            if _m.bias is not None:
                out = out + _m.bias.to(cdt)
            return out.to(x.dtype)

        module.forward = forward
        undo.append(_Undo(module))
    return undo


class _Undo:
    def __init__(self, module) -> None:
        self.module = module

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)

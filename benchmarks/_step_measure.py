"""Test and benchmark helpers: measure one real training step's tensor memory on this machine.

The memory planner's tests and ``bench_memory_plan.py`` hold ``plan_memory`` to these measurements.
They are not part of the installed library (no user-facing function needs them); the measurement itself,
``StepMemory``, ships with the trainer, which records the peak of every run.
"""

from __future__ import annotations

from lowres_adapt.modeling import disable_checkpointing, enable_checkpointing
from lowres_adapt.recipes._step_memory import StepMemory, _state_tensors


def quantized_storage_bytes(model) -> dict[str, int]:
    """Bytes bitsandbytes stores for the 4-bit weights of ``model``: packed data and quantization state.

    Every tensor of each ``Params4bit``'s ``quant_state`` is counted (absmax, codes, offset, and the
    nested state of double quantization), each storage once.
    """
    packed = constants = layers = 0
    done: set[int] = set()  # a PEFT layer shows its base layer's weight too: each weight once
    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        if state is None or type(weight).__name__ != "Params4bit" or id(weight) in done:
            continue
        done.add(id(weight))
        layers += 1
        packed += weight.untyped_storage().nbytes()
        seen: set[int] = set()
        for t in _state_tensors(state):
            if t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                constants += t.untyped_storage().nbytes()
    return {"quantized": packed, "quantization_constants": constants, "n_quantized_layers": layers}


def optimizer_state_bytes_of(optimizer) -> int:
    """Bytes of the distinct tensor storages held in ``optimizer.state`` (shared maps once)."""
    import torch

    seen: dict[int, int] = {}
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                seen[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
    return sum(seen.values())


def measure_training_step(model, batch_size: int, block_size: int, *, optimizer: str = "adamw",
                          gradient_checkpointing: bool = False, autocast=None, warmup_steps: int = 2,
                          seed: int = 0, document_length: int | None = None) -> dict[str, int]:
    """Trains ``model`` for ``warmup_steps`` steps on random token blocks, then measures one more step.

    The step is Trainer's: forward with labels, backward, gradient clipping at 1.0, optimizer step,
    ``zero_grad(set_to_none=True)``. Returns ``peak`` (tensor bytes at the step's peak, see
    ``StepMemory``), ``baseline`` (model and optimizer tensors before it), ``optimizer_states`` (bytes
    held by the optimizer) and ``gradients`` (bytes of all gradients at the end of a backward pass).
    ``optimizer``: ``"adamw"`` (fused torch AdamW, Trainer's default), ``"adamw_torch"`` or ``"adamw_8bit"``.
    ``document_length``: the blocks hold documents of this many tokens, packed isolated (position ids
    restart at each, no attention mask: the block-diagonal mask transformers builds); None: one sequence.
    """
    import torch

    device = next(model.parameters()).device
    if gradient_checkpointing:
        enable_checkpointing(model)
    else:
        disable_checkpointing(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    elif optimizer == "adamw_torch":
        opt = torch.optim.AdamW(params, lr=1e-5)
    elif optimizer == "adamw_8bit":
        import bitsandbytes as bnb

        opt = bnb.optim.AdamW8bit(params, lr=1e-5)
    else:
        raise ValueError(f"measure_training_step knows adamw, adamw_torch and adamw_8bit, got {optimizer!r}")
    vocab = model.get_input_embeddings().num_embeddings
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, block_size), generator=gen).to(device)
    extra = {}
    if document_length is not None:
        positions = torch.arange(block_size, device=device) % document_length
        extra = {"position_ids": positions.expand(batch_size, -1), "use_cache": False}
    grads = [0]

    def step() -> None:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model(input_ids=ids, labels=ids, **extra).loss
        loss.backward()
        del loss
        grads[0] = sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup_steps):
        step()
    with StepMemory(model, opt, device=device.type) as mem:
        step()
    return {"peak": mem.peak, "baseline": mem.baseline, "optimizer_states": optimizer_state_bytes_of(opt),
            "gradients": grads[0], "kind": mem.kind}

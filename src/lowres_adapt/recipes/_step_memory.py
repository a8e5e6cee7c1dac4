"""Measured memory of a real training step, in the same units as the plan: bytes of tensors.

On CUDA that is ``torch.cuda.max_memory_allocated`` over the step. On CPU the process's peak resident
memory (``ru_maxrss``, what ``metrics["peak_memory_bytes"]`` reports) is no match for a plan: it holds
the Python interpreter, torch's libraries, the tokenizer and the data, and it cannot be reset, so it
keeps the largest moment of the whole process (model loading included). Here the CPU number is instead:

    the bytes of the model's and optimizer's tensors when the step starts (parameters, buffers,
    4-bit quantization states, gradients if any, optimizer states; each storage once), plus the
    highest running sum of the allocations and frees the CPU allocator reports to the PyTorch profiler
    (``profile_memory=True``) during the step.

That is the tensor memory at the step's peak, the quantity the plan predicts. The measured step is a
steady one (optimizer states already exist) unless there is only one.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import tempfile
from typing import Any

log = logging.getLogger(__name__)


class _NativeStderrToLog:
    """Sends what C++ code writes to file descriptor 2 (the profiler's start/stop lines, the CPU allocator's
    note about blocks allocated before profiling) to this module's debug log instead of the user's terminal,
    for the one profiled step. Python's own ``sys.stderr`` writes are flushed first and are not touched."""

    def __enter__(self) -> _NativeStderrToLog:
        self._saved = None
        try:
            sys.stderr.flush()
            self._file = tempfile.TemporaryFile(mode="w+b")
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no real fd 2 (some notebooks, embedded interpreters)
            self._saved = None
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace").strip()
        self._file.close()
        if text:
            log.debug("native output during the profiled step:\n%s", text)


def model_tensor_bytes(model, optimizer=None) -> int:
    """Bytes of the distinct storages of ``model``'s parameters, buffers, gradients and 4-bit quantization
    states, and of ``optimizer``'s states."""
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is not None:
            tensors += _state_tensors(state)  # (repeats are harmless: storages count once below)
    if optimizer is not None:
        tensors += [v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
    seen = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(seen.values())


class StepMemory:
    """Context manager measuring the tensor-memory peak of a step of ``model`` (see the module docstring)."""

    def __init__(self, model, optimizer=None, device: str | None = None) -> None:
        import torch

        self.model, self.optimizer = model, optimizer
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.baseline = 0
        self.peak = 0
        self.kind = "cuda_max_allocated" if self.device == "cuda" else "cpu_tensor_profiler"
        self._prof = None

    def __enter__(self) -> StepMemory:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = int(torch.cuda.memory_allocated())
            return self
        gc.collect()
        self.baseline = model_tensor_bytes(self.model, self.optimizer)
        from torch.profiler import ProfilerActivity, profile

        self._quiet = _NativeStderrToLog().__enter__()
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = int(torch.cuda.max_memory_allocated())
            return
        try:
            self._prof.__exit__(*exc)
        finally:
            self._quiet.__exit__(*exc)
        events = [e for e in self._prof.profiler.kineto_results.events()
                  if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
        events.sort(key=lambda e: e.start_ns())
        live = high = 0
        for e in events:
            live += e.nbytes()
            high = max(high, live)
        self.peak = self.baseline + high
        self._prof = None


def _state_tensors(state) -> list:
    import torch

    out = [getattr(state, k) for k in ("absmax", "code", "offset") if torch.is_tensor(getattr(state, k, None))]
    if getattr(state, "state2", None) is not None:
        out += _state_tensors(state.state2)
    return out


def step_memory_callback(measure_step: int):
    """A ``TrainerCallback`` that measures the tensor-memory peak of optimizer step ``measure_step`` (0-based)."""
    from transformers import TrainerCallback

    class StepMemoryCallback(TrainerCallback):
        def __init__(self) -> None:
            self.result: dict[str, Any] | None = None
            self._ctx: StepMemory | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == measure_step and self._ctx is None:
                import torch

                before = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
                self._ctx = StepMemory(kwargs["model"], kwargs.get("optimizer")).__enter__()
                self._before = int(before)
            return control

        def on_step_end(self, args, state, control, **kwargs):
            if self._ctx is not None and self.result is None:
                self._ctx.__exit__(None, None, None)
                self.result = {"bytes": self._ctx.peak, "kind": self._ctx.kind, "step": measure_step + 1,
                               "peak_before": self._before}
            return control

    return StepMemoryCallback()

"""``FullFineTuning``: every weight of the base model trains (the quality reference, the memory worst case)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..modeling import loading
from . import _targets
from .base import AdaptationRecipe


@dataclass
class FullFineTuning(AdaptationRecipe):
    """Full fine-tuning: all weights train, except modules named in ``frozen_modules`` (and the vision or
    audio tower of a multimodal wrapper, which text never reaches).

    Example::

        >>> import lowres_adapt as la
        >>> la.FullFineTuning(frozen_modules=["wpe"])
        FullFineTuning(frozen_modules=('wpe',))
    """

    frozen_modules: tuple[str, ...] = field(
        default=(),
        metadata={"help": "Module-name suffixes whose weights stay frozen (e.g. ['wpe'] for GPT-2's position "
                          "embeddings); matched like PEFT target_modules: equal to, or ending with '.'+name."},
    )

    name: ClassVar[str] = "full"
    default_learning_rate: ClassVar[float] = 5e-5  # all weights move: smaller steps than adapters

    def __post_init__(self) -> None:
        if isinstance(self.frozen_modules, str):
            self.frozen_modules = (self.frozen_modules,)
        self.frozen_modules = tuple(self.frozen_modules)
        bad = [m for m in self.frozen_modules if not isinstance(m, str) or not m]
        if bad:
            raise ValueError(f"frozen_modules must be non-empty module names, got {bad!r}")

    def _adapt(self, model, *, gradient_checkpointing: bool = False, for_counting: bool = False) -> Any:
        if loading.is_peft(model):
            raise ValueError("FullFineTuning got a PeftModel; merge its adapter first (model.merge_and_unload()) "
                             "or keep training the adapter with LoRA")
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            raise ValueError("a quantized model cannot be fully fine-tuned; load it in full precision or use QLoRA")
        if self.frozen_modules:
            _targets.check_target_modules(model, self.frozen_modules)
        frozen_prefixes = [name + "." for name, _ in model.named_modules()
                           if name and any(name == m or name.endswith("." + m) for m in self.frozen_modules)]
        # a multimodal wrapper's vision/audio tower gets no gradient from text: keep it frozen (and out of
        # the optimizer) rather than count it as trained
        frozen_prefixes += [name + "." for name in _targets.non_language_modules(model)]
        for name, param in model.named_parameters():
            param.requires_grad = not any(name.startswith(p) for p in frozen_prefixes)
        if gradient_checkpointing and not for_counting:
            loading.enable_checkpointing(model)
        model.train()
        return model

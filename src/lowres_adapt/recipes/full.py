"""``FullFineTuning``: every weight of the base model trains (the quality reference, the memory worst case)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..modeling import loading
from . import _targets, _token_rows
from .base import OMIT_IF_DEFAULT, AdaptationRecipe


@dataclass
class FullFineTuning(AdaptationRecipe):
    """Full fine-tuning: all weights train, except modules named in ``frozen_modules`` (and the vision or
    audio tower of a multimodal wrapper, which text never reaches).

    ``trainable_token_indices`` (as in ``LoRA``; ``la.tokenization.new_token_peft_kwargs`` writes it after a
    vocabulary extension) keeps every other row of the input embedding and the LM head frozen, exactly,
    while the rest of the model trains: EEVE's "new rows only" for the embeddings. The frozen rows get
    no gradient, so with ``weight_decay=0`` (the default; decay is refused) AdamW never moves them.

    Example::

        >>> import lowres_adapt as la
        >>> la.FullFineTuning(frozen_modules=["wpe"])
        FullFineTuning(frozen_modules=('wpe',), trainable_token_indices=None)
        >>> la.FullFineTuning(trainable_token_indices=[98, 99]).to_dict()["trainable_token_indices"]
        [98, 99]
        >>> m = la.build_tiny_model("gpt2", vocab_size=100, hidden_size=16, num_heads=2, num_layers=1)
        >>> recipe = la.FullFineTuning(trainable_token_indices=[98, 99])
        >>> recipe.count_parameters(recipe._adapt(m))  # 98 of the 100 rows x 16 stay frozen
        {'trainable': 7440, 'total': 9008}
    """

    frozen_modules: tuple[str, ...] = field(
        default=(),
        metadata={"help": "Module-name suffixes whose weights stay frozen (e.g. ['wpe'] for GPT-2's position "
                          "embeddings); matched like PEFT target_modules: equal to, or ending with '.'+name."},
    )

    trainable_token_indices: Any = field(
        default=None,
        metadata={"help": "None: every embedding row trains. A list of token ids (rows of the input embedding "
                          "and of an untied LM head) or {module_name: [ids]}: only these rows of those modules "
                          "train, the others stay exactly as they are (the new rows after a vocabulary "
                          "extension, EEVE-style).", OMIT_IF_DEFAULT: True},
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
        self.trainable_token_indices = _token_rows.normalize(self.trainable_token_indices)

    def _check_train(self, weight_decay: float) -> None:
        if self.trainable_token_indices is not None and weight_decay:
            raise ValueError(f"trainable_token_indices freezes the other embedding rows by giving them no gradient, "
                             f"but weight_decay={weight_decay} would still shrink them; train with weight_decay=0")

    def count_parameters(self, model) -> dict[str, int]:
        """Returns ``{"trainable": int, "total": int}``; rows frozen by ``trainable_token_indices`` do not count."""
        counts = super().count_parameters(model)
        counts["trainable"] -= getattr(model, _token_rows.FROZEN_ATTR, 0)
        return counts

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
        if self.trainable_token_indices is not None:
            _token_rows.freeze_other_rows(model, self.trainable_token_indices, hooks=not for_counting)
        if gradient_checkpointing and not for_counting:
            loading.enable_checkpointing(model)
        model.train()
        return model

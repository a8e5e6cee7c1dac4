"""Recipes: how a model is adapted and trained. Full fine-tuning, LoRA (DoRA, rsLoRA, PiSSA, LoRA+), QLoRA
(LoRA on a 4-bit NF4 base) and staged adaptation (stages of those, with vocabulary extension and
instruction tuning), all on ``transformers.Trainer``.

Modules: ``base`` (``AdaptationRecipe``: config, ``prepare``, ``train``), ``full``, ``lora``, ``staged``,
``_targets`` (which modules get adapters), ``_trainer`` (Trainer glue, callbacks, the collator) and
``_step_memory`` (the measured memory of a training step, recorded in every run). A new recipe is a
subclass of ``AdaptationRecipe`` with a ``name``; defining it registers it for ``from_dict``.

This concept imports ``drift``, ``evaluation``, ``tokenization``, ``modeling`` and ``data`` below it.

Example::

    >>> import lowres_adapt as la
    >>> recipe = la.QLoRA(r=8)
    >>> la.AdaptationRecipe.from_dict(recipe.to_dict()) == recipe
    True
"""

from __future__ import annotations

from typing import Any

from ._targets import find_target_modules
from .base import AdaptationRecipe, TrainingRun, meta_model
from .full import FullFineTuning
from .lora import LoRA, QLoRA
from .staged import Stage, StagedRecipe, build_instruction_dataset

__all__ = [
    "AdaptationRecipe",
    "FullFineTuning",
    "LoRA",
    "QLoRA",
    "Stage",
    "StagedRecipe",
    "TrainingRun",
    "build_instruction_dataset",
    "count_parameters_for",
    "find_target_modules",
]


def count_parameters_for(config_or_model_id: Any, recipe: AdaptationRecipe) -> dict[str, int]:
    """Returns ``{"trainable": int, "total": int}`` for ``recipe`` on a model, without loading weights.

    ``config_or_model_id`` is a transformers config, a local folder or a hub id (only ``config.json`` is
    read). The model is built on the meta device (accelerate's ``init_empty_weights``) and adapted as
    the recipe would, so the counts equal what ``recipe.count_parameters`` reports after ``prepare``
    (QLoRA's 4-bit weights are counted unpacked, as PEFT counts them). Use it to see the trade-off
    before downloading 7B weights.

    Example::

        >>> import transformers, lowres_adapt as la
        >>> cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        ...                                num_attention_heads=4, vocab_size=100)
        >>> la.count_parameters_for(cfg, la.LoRA(r=8))
        {'trainable': 8192, 'total': 103232}
    """
    from transformers import AutoConfig, PretrainedConfig

    if not isinstance(recipe, AdaptationRecipe):
        raise TypeError(f"recipe must be an AdaptationRecipe (FullFineTuning, LoRA, QLoRA), got {type(recipe).__name__}")
    if isinstance(config_or_model_id, PretrainedConfig):
        config = config_or_model_id
    else:
        from ..modeling import resolve_model

        spec = str(config_or_model_id)
        try:
            config = AutoConfig.from_pretrained(spec)
        except OSError:
            config = resolve_model(spec).config  # raises FileNotFoundError naming the bad path
    model = recipe._adapt(meta_model(config), for_counting=True)
    return recipe.count_parameters(model)

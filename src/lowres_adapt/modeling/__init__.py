"""Modeling: the one place models and tokenizers are resolved and loaded, text generation, and the tiny
models and tokenizers built in-process for tests and demos.

A model spec is a folder written by ``save_pretrained``, an adapter folder (its base is read from
``adapter_config.json``), a hub id, a ``sample:`` name, or a model object; ``resolve_model`` turns each
into a ``ModelSource`` and ``load_model`` loads it under the library's dtype and quantization policy.

This concept imports only ``data``, ``errors`` and ``_utils``.

Example::

    >>> from lowres_adapt import modeling
    >>> modeling.resolve_model("sample:mini-gpt2-ru").config.model_type
    'gpt2'
"""

from . import loading
from .generation import generate
from .loading import (
    ModelSource,
    check_block_size,
    context_length,
    default_dtype,
    disable_checkpointing,
    enable_checkpointing,
    is_hub_id,
    is_peft,
    load_model,
    require_4bit,
    resolve_model,
    training_device,
)
from .toy import build_tiny_model, save_tiny_checkpoint, train_tokenizer

__all__ = [
    "ModelSource", "build_tiny_model", "check_block_size", "context_length", "default_dtype",
    "disable_checkpointing", "enable_checkpointing", "generate", "is_hub_id", "is_peft", "load_model", "loading",
    "require_4bit", "resolve_model", "save_tiny_checkpoint", "train_tokenizer", "training_device",
]

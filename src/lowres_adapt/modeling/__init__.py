"""Modeling: the one place models and tokenizers are resolved and loaded, text generation, and the tiny
models and tokenizers built in-process for tests and demos.

A model spec is a folder written by ``save_pretrained``, an adapter folder (its base is read from
``adapter_config.json``), a hub id, a ``sample:`` name, or a model object; ``resolve_model`` turns each
into a ``ModelSource``. ``load_model`` (training) and ``load_for_inference`` (evaluation, generation)
load it under the one dtype / device / quantization policy of ``policy``; ``model_kwargs`` pass through.

This concept imports only ``data``, ``errors`` and ``_utils``.

Example::

    >>> from lowres_adapt import modeling
    >>> modeling.resolve_model("sample:mini-gpt2-ru").config.model_type
    'gpt2'
"""

from . import loading, policy
from .generation import generate
from .loading import (
    MODEL_KWARGS,
    ModelSource,
    base_load_of,
    check_block_size,
    check_model_kwargs,
    context_length,
    disable_checkpointing,
    enable_checkpointing,
    is_hub_id,
    is_peft,
    load_for_inference,
    load_model,
    require_4bit,
    resolve_model,
)
from .policy import (
    BASE_LOADS,
    QLORA_QUANTIZATION,
    default_base_load,
    default_dtype,
    default_inference_load,
    local_cuda_index,
    training_device,
    weight_bytes,
)
from .toy import build_tiny_model, save_tiny_checkpoint, train_tokenizer

__all__ = [
    "BASE_LOADS", "MODEL_KWARGS", "QLORA_QUANTIZATION", "ModelSource", "base_load_of", "build_tiny_model",
    "check_block_size", "check_model_kwargs", "context_length", "default_base_load", "default_dtype",
    "default_inference_load", "disable_checkpointing", "enable_checkpointing", "generate", "is_hub_id", "is_peft",
    "load_for_inference", "load_model", "loading", "local_cuda_index", "policy", "require_4bit", "resolve_model",
    "save_tiny_checkpoint", "train_tokenizer", "training_device", "weight_bytes",
]

"""Seeded, batched generation of continuations: the texts the drift detector checks.

Public as ``lowres_adapt.generate`` (and ``lowres_adapt.drift.generate``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any


def generate(
    model,
    tokenizer=None,
    prompts: Sequence[str] | str = (),
    seed: int = 0,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    load: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Returns the continuation (prompt not included) of each prompt, generated in batches.

    ``model`` is a causal LM (plain or PEFT) or a path, hub id or ``sample:`` name (then ``tokenizer`` may
    be None); a path loads through the library's one loader (``load_for_inference``: on the GPU when there
    is one, in ``load``, with ``model_kwargs`` passed on), as the evaluator does. Prompts are
    left-padded inside each batch (the tokenizer is not modified). Greedy by default; ``do_sample=True``
    samples with ``temperature`` and ``top_p`` (no top-k cut unless you pass ``top_k=``). The global torch
    random state is set from ``seed`` for the call and restored afterwards, so the same seed and
    ``batch_size`` give identical output on CPU. The model's training mode is restored.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> gens = la.generate(model, tok, ["Беҙ", "Бөгөн"], max_new_tokens=5)
        >>> len(gens), gens == la.generate(model, tok, ["Беҙ", "Бөгөн"], max_new_tokens=5)
        (2, True)
    """
    import torch

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is {p!r}; every prompt must be a non-empty string")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if do_sample and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if tokenizer is None and not isinstance(model, (str, os.PathLike)):
        raise ValueError("generate() needs a tokenizer when model is a model object; pass the model's tokenizer")
    from .loading import load_for_inference

    model, tokenizer = load_for_inference(model, tokenizer, load=load, model_kwargs=model_kwargs)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")

    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    limit = getattr(getattr(model, "config", None), "n_positions", None)  # learned absolute positions (GPT-2)
    longest = max((len(ids) for ids in encoded), default=0)
    if limit is not None and longest + max_new_tokens > limit:
        raise ValueError(f"the longest prompt ({longest} tokens) plus max_new_tokens={max_new_tokens} exceeds "
                         f"the model's {limit} positions; shorten the prompts or lower max_new_tokens")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad_id}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    kwargs.update(generate_kwargs)

    device = next(model.parameters()).device
    was_training = model.training
    cuda = [device.index or 0] if device.type == "cuda" else []
    out: list[str] = []
    model.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.manual_seed(seed)
            for b in range(0, len(encoded), batch_size):
                batch = encoded[b:b + batch_size]
                width = max(len(ids) for ids in batch)
                input_ids = torch.tensor([[pad_id] * (width - len(ids)) + list(ids) for ids in batch], device=device)
                mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
                generated = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
                out += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out

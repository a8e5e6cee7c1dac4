"""What both evaluators share: the token a text is conditioned on, the model's context, and the seeded
percentile bootstrap (``scipy.stats.bootstrap``) behind every confidence interval."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._utils import config_context_length

_BOOTSTRAP_BATCH = 100  # resamples held in memory at once (n_items x 100 floats per array)
# Below this many documents (items), a bootstrap interval is too coarse to read as a 95% interval: it can
# only take a handful of distinct values and it undercovers (the resampled corpora are near copies).
MIN_UNITS_FOR_INTERVALS = 10


def few_units_warning(n: int, unit: str) -> str | None:
    """The warning that goes with bootstrap intervals over ``n`` ``unit`` (documents, items), or None
    when there are enough of them (``MIN_UNITS_FOR_INTERVALS``)."""
    if n >= MIN_UNITS_FOR_INTERVALS:
        return None
    return (f"the confidence intervals rest on {n} {unit} (fewer than {MIN_UNITS_FOR_INTERVALS}): a bootstrap "
            f"over so few {unit} is unreliable; read them as rough, and score more {unit} for real intervals")


def prefix_token_id(tokenizer: Any) -> int:
    """BOS where the tokenizer has one, else EOS: the token every document or prompt is conditioned on."""
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a BOS nor an EOS token, so the first token of a text has "
                     "nothing to be conditioned on; give it one, e.g. "
                     "tokenizer.add_special_tokens({'eos_token': '</s>'}) (and resize the model's embeddings)")


def model_context(model: Any) -> int | None:
    """The context length in the model's config (the text model's, as lm-eval reads it)."""
    return config_context_length(getattr(model, "config", None))


def percentile_bootstrap(data: Sequence[Any], statistic: Callable, *, samples: int, level: float, seed: int,
                         paired: bool = False, vectorized: bool = False):
    """``(low, high)`` of a percentile bootstrap of ``statistic`` over the items of ``data`` (arrays of equal
    length), with ``samples`` resamples drawn from ``numpy.random.default_rng(seed)``."""
    import numpy as np
    from scipy import stats

    res = stats.bootstrap(tuple(data), statistic, paired=paired, vectorized=vectorized, n_resamples=samples,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
                          batch=_BOOTSTRAP_BATCH)
    return res.confidence_interval.low, res.confidence_interval.high


# ----------------------------------------------------------------------------------- scoring tokens
# Positions x vocabulary held at once while reducing logits: 2**25 floats (128 MiB in fp32), whatever the
# context and the vocabulary (a 32k-token window at Mistral's 32k vocabulary would be 4 GiB of fp32 logits,
# five times that at Qwen's 152k).
LOGIT_CHUNK_ELEMENTS = 1 << 25

# model -> whether decoder + chunked head equals the model's logits (weak keys: a freed model's verdict goes
# with it, never to a new model that happens to reuse its address)
_HEAD_SPLIT_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_nll(model: Any, input_ids, attention_mask, targets):
    """Returns the negative log-likelihood (nats, float64, on CPU) of ``targets`` (``-100``: not scored) at
    every position of a right-padded batch; 0 where nothing is scored.

    The decoder runs once; the output layer then runs only on the scored positions, a chunk of
    ``LOGIT_CHUNK_ELEMENTS // vocabulary`` positions at a time, reduced to one number per position in fp32.
    No batch x width x vocabulary tensor (nor its fp32 copy) is ever held. Models whose logits are not
    ``head(last hidden state)`` (plus the soft-capping or scaling their config names) are caught by a
    one-window probe against their own forward and scored through it, still reduced in chunks.
    """
    import torch

    device = model.get_input_embeddings().weight.device
    scored = targets != -100
    out = torch.zeros(targets.shape, dtype=torch.float64)
    if not bool(scored.any()):
        return out
    parts = _split_head(model, input_ids, attention_mask, device)
    if parts is not None:
        decoder, head, post = parts
        hidden = decoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)[0]
        rows = hidden[scored.to(hidden.device)]
        out[scored] = _chunked_nll(lambda a, b: post(head(rows[a:b])), len(rows), targets[scored])
        return out
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False).logits
    for b in range(len(targets)):  # the model returns full logits: reduce them a chunk of positions at a time
        pos = scored[b].nonzero().squeeze(-1)
        out[b, pos] = _chunked_nll(lambda i, j, b=b, pos=pos: logits[b, pos[i:j].to(logits.device)], len(pos),
                                   targets[b, pos])
    return out


def _chunked_nll(logits_of, n: int, targets):
    """``logsumexp(logits) - logit[target]`` per position, ``logits_of(i, j)`` giving positions i..j-1."""
    import torch

    out = torch.empty(n, dtype=torch.float64)
    step = None
    i = 0
    while i < n:
        if step is None:  # the vocabulary is known from the first chunk
            first = logits_of(i, i + 1)
            step = max(1, LOGIT_CHUNK_ELEMENTS // first.shape[-1])
        j = min(n, i + step)
        # in place on the fp32 chunk (half and 4-bit models' logits are upcast): no second copy
        logits = logits_of(i, j).float()
        picked = logits.gather(-1, targets[i:j].to(logits.device).unsqueeze(-1)).squeeze(-1)
        peak = logits.amax(dim=-1, keepdim=True)
        lse = logits.sub_(peak).exp_().sum(dim=-1).log_().add_(peak.squeeze(-1))
        out[i:j] = (lse - picked).double().cpu()
        i = j
    return out


def _split_head(model: Any, input_ids, attention_mask, device):
    """``(decoder, head, postprocess)`` when the model's logits are ``postprocess(head(decoder(x)[0]))``,
    checked once per model on a short slice of the first batch; else None."""
    import torch

    hf = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: the wrapped model
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    decoder = getattr(hf, "base_model", None)
    if head is None or decoder is None or decoder is hf:
        return None
    config = getattr(hf, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None)
    divide = getattr(text, "logits_scaling", None)

    def post(logits):
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    key = model
    if key not in _HEAD_SPLIT_OK:
        n = int(attention_mask[0].sum().clamp(max=16))
        ids, mask = input_ids[:1, :n].to(device), attention_mask[:1, :n].to(device)
        want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        got = post(head(decoder(input_ids=ids, attention_mask=mask, use_cache=False)[0])).float()
        _HEAD_SPLIT_OK[key] = bool(torch.allclose(got, want, rtol=1e-3, atol=1e-3 * float(want.abs().max()) + 1e-6))
    return (decoder, head, post) if _HEAD_SPLIT_OK[key] else None

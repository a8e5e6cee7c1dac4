"""What both evaluators share: the token a text is conditioned on, the model's context, and the seeded
percentile bootstrap (``scipy.stats.bootstrap``) behind every confidence interval."""

from __future__ import annotations

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

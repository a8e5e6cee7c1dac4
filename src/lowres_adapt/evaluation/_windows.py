"""Rolling windows that score every token of a document exactly once, and their batched scoring.

Private to ``evaluation``.

The contract, for a document of ``n`` tokens ``t0 .. t(n-1)``, a prefix token ``P`` (BOS, else EOS),
a window length ``M`` (``max_length``) and a ``stride`` ``S`` (``None`` means ``S = M``)::

    s = [P, t0, t1, ..., t(n-1)]          # the prefix token is input only, it is never scored

    targets are cut into chunks:  [t0 .. t(M-1)]  then  S tokens at a time  (the last chunk may be short)
    a chunk t[a:b] is predicted by the window s[max(0, b-M) : b]: the (up to) M inputs that end right
    before its last target; only the last b-a logits of that window are scored.

Example, ``M = 4``, ``S = None`` (= 4), ``n = 10`` (``.`` = input only, ``^`` = input whose next token
is scored, ``->`` targets)::

    window 1   P  t0 t1 t2                   -> t0 t1 t2 t3    (first window: all M predictions)
               ^  ^  ^  ^
    window 2               t3 t4 t5 t6       -> t4 t5 t6 t7
                           ^  ^  ^  ^
    window 3                     t5 t6 t7 t8 -> t8 t9          (last, partial: extra context t5 t6)
                                 .  .  ^  ^

This is exactly lm-evaluation-harness's ``loglikelihood_rolling``: ``get_rolling_token_windows(
tokens, prefix_token=P, max_seq_len=M, context_len=1)`` followed by ``make_disjoint_window``, with the
model fed ``(context + continuation)[-(M+1):][:-1]`` and the last ``len(continuation)`` logits scored.
With ``S = 2`` the same document is scored by windows that each predict 2 new tokens after at least
``M - 2`` tokens of context::

    window 1   P  t0 t1 t2                   -> t0 t1 t2 t3
    window 2         t1 t2 t3 t4             -> t4 t5
    window 3               t3 t4 t5 t6       -> t6 t7
    window 4                     t5 t6 t7 t8 -> t8 t9

Windows are returned as ``(start, end, n_scored)`` in coordinates of ``s``: the model input is
``s[start:end]`` and its last ``n_scored`` positions predict ``s[end - n_scored + 1 : end + 1]``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ._common import token_nll


def window_spans(n_tokens: int, max_length: int, stride: int | None = None) -> list[tuple[int, int, int]]:
    """``(start, end, n_scored)`` spans over ``[prefix] + tokens`` that score each of ``n_tokens`` once.

    >>> window_spans(10, 4)
    [(0, 4, 4), (4, 8, 4), (6, 10, 2)]
    >>> window_spans(10, 4, stride=2)
    [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    step = max_length if stride is None else stride
    if not 1 <= step <= max_length:
        raise ValueError(f"stride must be between 1 and max_length={max_length}, got {stride}")
    spans = []
    a = 0
    b = min(max_length, n_tokens)  # the first chunk predicts up to M tokens
    while a < n_tokens:
        spans.append((max(0, b - max_length), b, b - a))
        a, b = b, min(b + step, n_tokens)
    return spans


def window_tokens(
    tokens: Sequence[int], prefix_token: int, span: tuple[int, int, int]
) -> tuple[list[int], list[int]]:
    """``(input_ids, target_ids)`` of one span: the model input and the ``n_scored`` tokens it predicts.

    >>> window_tokens([10, 11, 12], 0, (0, 3, 3))
    ([0, 10, 11], [10, 11, 12])
    """
    start, end, n_scored = span
    if start == 0:
        inputs = [prefix_token, *tokens[: end - 1]]
    else:
        inputs = list(tokens[start - 1 : end - 1])
    return inputs, list(tokens[end - n_scored : end])


def score_documents(
    model: Any,
    token_lists: Sequence[Sequence[int]],
    prefix_token: int,
    max_length: int,
    stride: int | None,
    batch_size: int,
    bar: Any = None,
    max_batch_tokens: int | None = None,
) -> list[float]:
    """Σ nll (nats) per document: all windows of all documents, longest first, at most ``batch_size``
    windows and ``max_batch_tokens`` tokens (padding included; one window at least) per forward pass.

    Windows are right-padded with an attention mask; padding is never scored, and the output layer runs
    on scored positions only, in vocabulary-bounded chunks (``_common.token_nll``). Call it inside
    :func:`eval_mode`. ``bar`` (a tqdm bar) is advanced by the number of tokens scored.
    """
    import torch

    # Spans only; the token lists of a window are built when its batch runs (bounded memory).
    spans = [(doc, span) for doc, tokens in enumerate(token_lists)
             for span in window_spans(len(tokens), max_length, stride)]
    # Longest first (as lm-eval does): padding stays small and an out-of-memory error shows up at once.
    spans.sort(key=lambda item: item[1][0] - item[1][1])
    nll = [0.0] * len(token_lists)
    first = 0
    while first < len(spans):
        width = spans[first][1][1] - spans[first][1][0]
        fits = batch_size if max_batch_tokens is None else max(1, max_batch_tokens // width)
        batch = spans[first : first + min(batch_size, fits)]
        first += len(batch)
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        targets = torch.full((len(batch), width), -100, dtype=torch.long)  # -100: not scored
        for row, (doc, span) in enumerate(batch):
            inputs, target = window_tokens(token_lists[doc], prefix_token, span)
            n = len(inputs)
            # Right padding: a causal model's real positions never attend to the padding after them,
            # and their position ids stay 0..n-1, exactly as for the window alone.
            input_ids[row, :n] = torch.tensor(inputs)
            attention_mask[row, :n] = 1
            targets[row, n - len(target) : n] = torch.tensor(target)
        row_nll = token_nll(model, input_ids, attention_mask, targets).sum(dim=1)
        for row, (doc, _) in enumerate(batch):
            nll[doc] += float(row_nll[row])
        if bar is not None:
            bar.update(int((targets != -100).sum()))
    if not all(math.isfinite(x) for x in nll):
        warnings.warn("some documents have a non-finite log-likelihood (NaN/inf logits); check the model "
                      "and its dtype", RuntimeWarning, stacklevel=3)
    return nll


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """``torch.inference_mode`` with every module in eval mode; afterwards each module gets its own
    training flag back (a model can mix training and eval submodules, e.g. frozen parts)."""
    import torch

    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        for module, mode in modes:
            module.training = mode

"""How the new embedding rows of an extended vocabulary are initialised (``extend_vocabulary(init=...)``).

Every init writes the rows of the new token ids in the input embedding and, when the LM head is not
tied to it, the same rows of the head (and its bias). The statistics ("mean of all rows", covariance)
are taken over the model's *old* rows only.

- ``"mean"``: FVT (Gee et al. 2022): the mean of the old rows of the pieces the old tokenizer cut the
  token into; a token without pieces gets the mean of all old rows.
- ``"merge"``: from the BPE merge that creates the token (Yamaguchi et al. 2024): the mean of its two
  parents' rows, where a parent that is itself new is built the same way first, in merge order. A new
  entry no merge creates (a whole character the base writes as byte-fallback bytes) falls back to
  ``"mean"``. For ``((a b) c)`` this weighs ``c`` twice as much as ``a`` or ``b``; "mean" weighs them equally.
- ``"covariance"``: a draw from a normal with the old rows' mean and ``COVARIANCE_SCALE`` times their
  covariance, as ``transformers``' ``resize_token_embeddings(mean_resizing=True)`` does (Hewitt 2021);
  the mean alone where the scaled covariance is not positive definite. A bias row gets the old mean.
- ``"random"``: the old small-normal default, ``N(0, initializer_range)`` (0.02 when the config has no
  ``initializer_range``), bias 0: a control that ignores everything the model knows.

The draws use a ``torch.Generator`` seeded with ``seed``, so a seed gives the same rows on every run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

INITS = ("mean", "merge", "covariance", "random")
# transformers' _init_added_embeddings_weights_with_mean samples from N(mean, 1e-9 * covariance)
COVARIANCE_SCALE = 1e-9


def creating_merges(tokenizer, tokens: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{token: (left, right)}``: for each of ``tokens``, the first merge of the BPE model that creates it."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    want, out = set(tokens), {}
    for m in spec["model"].get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        if left + right in want and left + right not in out:
            out[left + right] = (left, right)
    return out


def init_rows(model, new_ids: Sequence[int], pieces: Sequence[Sequence[int]], old_rows: int, init: str, *,
              seed: int = 0, parents: dict[int, tuple[int, int]] | None = None) -> None:
    """Writes the rows ``new_ids`` of the (already resized) model's embeddings in place.

    ``pieces[k]``: old ids token ``new_ids[k]`` was cut into; ``old_rows``: rows the model had before;
    ``parents``: ``{new id: (left id, right id)}`` for ``"merge"``.
    """
    import torch

    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.weight.data_ptr()
    new = set(new_ids)
    keep = [i for i in range(old_rows) if i not in new]  # the old rows (a padded model may reuse spare ones)
    tables = [emb.weight]
    if out is not None and not tied:
        tables.append(out.weight)
        if getattr(out, "bias", None) is not None:
            tables.append(out.bias)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for table in tables:
            old = table.detach()[keep].to(torch.float64)
            rows = _rows(old, keep, new_ids, pieces, init, gen, parents or {}, _std(model))
            table[list(new_ids)] = rows.to(table.dtype)


def _rows(old, keep: list[int], new_ids, pieces, init: str, gen, parents: dict[int, tuple[int, int]], std: float):
    """The new rows (a matrix, or a vector for a bias) for one table; ``old`` holds the rows ``keep``."""
    import torch

    n = len(new_ids)
    mean = old.mean(0)
    if init == "random":
        if old.dim() == 1:
            return torch.zeros(n, dtype=old.dtype)
        return torch.randn((n, old.shape[1]), generator=gen, dtype=old.dtype) * std
    if init == "covariance":
        if old.dim() == 1:  # a bias: N(mean, 1e-9 * std) in transformers, i.e. the mean
            return mean.expand(n).clone()
        centered = old - mean
        cov = COVARIANCE_SCALE * centered.T @ centered / old.shape[0]
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:  # not positive definite: transformers falls back to the mean
            return mean.expand(n, -1).clone()
        z = torch.randn((n, old.shape[1]), generator=gen, dtype=old.dtype)
        return mean + z @ chol.T
    position = {i: k for k, i in enumerate(keep)}

    def piece_mean(k: int):
        p = [position[j] for j in pieces[k] if j in position]
        return old[p].mean(0) if p else mean

    if init == "mean":
        return torch.stack([piece_mean(k) for k in range(n)])
    # "merge": the mean of the two parents, built recursively (parents before children: merge order)
    index = {i: k for k, i in enumerate(new_ids)}
    built: dict[int, object] = {}

    def row(i: int):
        if i in position:
            return old[position[i]]
        if i not in built:
            if i in parents:
                left, right = parents[i]
                built[i] = (row(left) + row(right)) / 2
            else:
                built[i] = piece_mean(index[i]) if i in index else mean
        return built[i]

    return torch.stack([row(i) for i in new_ids])


def _std(model) -> float:
    std = getattr(getattr(model, "config", None), "initializer_range", None)
    return float(std) if isinstance(std, (int, float)) and std > 0 else 0.02

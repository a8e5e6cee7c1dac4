"""Training only some rows of the embeddings under full fine-tuning (``FullFineTuning(trainable_token_indices=...)``).

PEFT's ``trainable_token_indices`` does this for adapters (a trainable delta for the chosen rows of a frozen
embedding). With full fine-tuning every other weight trains and the embedding must stay one ordinary
tensor (saved, tied and reloaded as usual), so the other rows are frozen by a gradient hook that zeroes
their gradient instead. AdamW then never moves them: its moments stay zero and its update is exactly zero
(weight decay, which would shrink them anyway, is refused by the recipe).
"""

from __future__ import annotations

from typing import Any

# model attribute: how many parameters the hooks keep frozen (subtracted from the trainable count)
FROZEN_ATTR = "_lowres_adapt_frozen_row_params"


def normalize(tti: Any):
    """``None``, a tuple of ids, or ``{module name: tuple of ids}`` (the form ``LoRA`` keeps too)."""
    if tti is None:
        return None
    if isinstance(tti, dict):
        out = {str(k): tuple(int(i) for i in v) for k, v in tti.items()}
    else:
        out = tuple(int(i) for i in tti)
    if not out or (isinstance(out, dict) and not all(out.values())):
        raise ValueError(f"trainable_token_indices needs at least one token id per module, got {tti!r}")
    return out


def _targets(model, tti) -> list[tuple[str, Any, list[int]]]:
    """(name, module, ids) for each module whose rows are chosen."""
    if not isinstance(tti, dict):
        emb, out = model.get_input_embeddings(), model.get_output_embeddings()
        mods = [emb] + ([out] if out is not None and out.weight is not emb.weight else [])
        names = {id(m): n for n, m in model.named_modules()}
        return [(names[id(m)], m, list(tti)) for m in mods]
    found = []
    for key, ids in tti.items():
        hits = [(n, m) for n, m in model.named_modules() if n == key or n.endswith("." + key)]
        if not hits:
            raise ValueError(f"trainable_token_indices names module {key!r}, which the model does not have; "
                             "use the embedding's name (e.g. 'wte', 'embed_tokens', 'lm_head')")
        found.extend((n, m, list(ids)) for n, m in hits)
    return found


def freeze_other_rows(model, tti, *, hooks: bool = True) -> None:
    """Zeroes the gradient of every row not in ``tti`` of the chosen modules' weight (and bias)."""
    import torch

    seen: set[int] = set()
    frozen = 0
    for name, module, ids in _targets(model, tti):
        for param in (getattr(module, "weight", None), getattr(module, "bias", None)):
            if param is None or id(param) in seen or not param.requires_grad:
                if param is not None and id(param) not in seen and not param.requires_grad:
                    raise ValueError(f"trainable_token_indices names {name!r}, which frozen_modules freezes")
                continue
            seen.add(id(param))
            rows = param.shape[0]
            bad = [i for i in ids if not 0 <= i < rows]
            if bad:
                raise ValueError(f"trainable_token_indices {bad[:5]} are outside {name!r}'s {rows} rows")
            keep = sorted(set(ids))
            frozen += (rows - len(keep)) * (param.numel() // rows)
            if hooks:
                frozen_mask = torch.ones(rows, dtype=torch.bool)
                frozen_mask[keep] = False
                param.register_hook(_zero_rows(frozen_mask.view((rows,) + (1,) * (param.dim() - 1))))
    setattr(model, FROZEN_ATTR, frozen)


def _zero_rows(frozen_mask):
    """A gradient hook that zeroes the rows ``frozen_mask`` marks (NaN there becomes 0 too)."""
    def hook(grad):
        return grad.masked_fill(frozen_mask.to(grad.device), 0)

    return hook

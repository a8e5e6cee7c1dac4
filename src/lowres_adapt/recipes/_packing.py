"""Training data for the Trainer: documents tokenized with ``datasets.map``, EOS-joined and packed into
blocks; user datasets checked; the padding collator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

# Documents packed per ``datasets.map`` batch: the remainder under one block is dropped per batch,
# so a large batch keeps the packing efficiency near 1 while memory stays bounded.
_PACK_BATCH_DOCS = 10_000

# ------------------------------------------------------------------------------------ data
def pack_texts(tokenizer, texts: Sequence[str], block_size: int, what: str):
    """Returns ``(dataset, stats)``: documents tokenized with ``datasets.map``, joined with EOS, packed
    into ``block_size`` blocks by ``lowres_adapt.data.pack_documents``."""
    from datasets import Dataset

    from ..data import pack_documents

    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of documents, not one string; wrap it: [{what}]")
    docs = [t for t in texts if isinstance(t, str) and t.strip()]
    if not docs:
        raise ValueError(f"{what} has no non-empty document")
    eos = tokenizer.eos_token_id

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": ids, "n_tokens": [len(x) + 1 for x in ids]}  # +1: the EOS that joins them

    def pack(batch):
        blocks, _ = pack_documents(batch["input_ids"], block_size, eos)
        return {"input_ids": blocks}

    tokenized = Dataset.from_dict({"text": docs}).map(tokenize, batched=True, remove_columns=["text"],
                                                      desc=f"tokenize {what}")
    n_tokens = int(sum(tokenized["n_tokens"]))
    packed = tokenized.map(pack, batched=True, batch_size=_PACK_BATCH_DOCS, remove_columns=tokenized.column_names,
                           desc=f"pack {what}")
    if len(packed) == 0:
        raise ValueError(f"{what} has {n_tokens} tokens, fewer than one block of block_size={block_size}; "
                         "lower block_size or give more text")
    kept = len(packed) * block_size
    stats = {"n_tokens": n_tokens, "n_blocks": len(packed), "dropped_tokens": n_tokens - kept,
             "packing_efficiency": kept / n_tokens}
    return packed, stats


_EXAMPLE_COLUMNS = ("input_ids", "labels", "attention_mask")


def as_dataset(data, what: str, context: int | None):
    """Returns a ``datasets.Dataset`` of pre-tokenized examples (``input_ids`` [+ ``labels``, ``attention_mask``])."""
    from datasets import Dataset

    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, Sequence) and not isinstance(data, str):
        if not all(isinstance(r, dict) for r in data):
            raise TypeError(f"{what} must be a datasets.Dataset or a list of dicts with input_ids")
        ds = Dataset.from_list([{k: r[k] for k in _EXAMPLE_COLUMNS if k in r} for r in data]) if data else None
    else:
        raise TypeError(f"{what} must be a datasets.Dataset or a list of dicts, got {type(data).__name__}")
    if ds is None or len(ds) == 0:
        raise ValueError(f"{what} is empty")
    if "input_ids" not in ds.column_names:
        raise ValueError(f"{what} has no input_ids column (columns: {ds.column_names}); tokenize it first")
    ds = ds.select_columns([c for c in _EXAMPLE_COLUMNS if c in ds.column_names])
    longest = max(len(x) for x in ds["input_ids"])
    if longest == 0:
        raise ValueError(f"{what} holds only empty examples")
    if context is not None and longest > context:
        raise ValueError(f"{what} has an example of {longest} tokens, longer than the model's context of "
                         f"{context}; truncate examples to <= {context} tokens")
    return ds


class PadCollator:
    """Batches examples of any length: right-pads ``input_ids`` with ``pad_id`` and ``labels`` with -100.

    ``labels`` default to ``input_ids`` (the model shifts them); ``attention_mask`` is added when lengths
    differ or ``always_mask`` is set (so Trainer counts non-padding tokens).
    """

    def __init__(self, pad_id: int, always_mask: bool = False) -> None:
        self.pad_id = pad_id
        self.always_mask = always_mask

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(e["input_ids"]) for e in examples]
        width = max(lengths)
        simple = (min(lengths) == width and not self.always_mask
                  and not any("labels" in e or "attention_mask" in e for e in examples))
        if simple:  # packed blocks: one tensor, labels are the inputs
            ids = torch.tensor([list(e["input_ids"]) for e in examples], dtype=torch.long)
            return {"input_ids": ids, "labels": ids.clone()}
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (e, n) in enumerate(zip(examples, lengths, strict=True)):
            ids[i, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
            lab = e.get("labels")
            if lab is not None and len(lab) != n:
                raise ValueError(f"an example has {n} input_ids but {len(lab)} labels; they must align")
            labels[i, :n] = torch.as_tensor(lab if lab is not None else e["input_ids"], dtype=torch.long)
            m = e.get("attention_mask")
            mask[i, :n] = torch.as_tensor(m, dtype=torch.long) if m is not None else 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

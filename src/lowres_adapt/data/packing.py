"""Training blocks: tokenized documents joined and cut into fixed-size blocks (``pack_documents``), a corpus
tokenized with ``datasets.map`` and packed batch by batch (``pack_texts``), and user datasets checked
(``as_dataset``)."""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Sequence

from .._utils import token_id

logger = logging.getLogger(__name__)

# Documents packed per ``datasets.map`` batch: the remainder under one block is dropped per batch,
# so a large batch keeps the packing efficiency near 1 while memory stays bounded.
_PACK_BATCH_DOCS = 10_000

def pack_documents(
    token_ids: Iterable[Sequence[int]], block_size: int, eos_id: int | None = None, *, drop_last: bool = True
) -> tuple[list[list[int]], dict[str, float]]:
    """Returns ``(blocks, stats)``: tokenized documents joined (EOS after each) and cut into equal blocks.

    No padding is wasted: every block holds ``block_size`` real tokens, and a trailing remainder shorter
    than a block is dropped (``drop_last=True``) or kept as a shorter last block. ``stats`` has ``n_tokens``
    (after adding EOS), ``n_blocks``, ``dropped_tokens`` and ``packing_efficiency`` (share of tokens that
    landed in a block).

    Example::

        >>> import lowres_adapt as la
        >>> blocks, stats = la.pack_documents([[1, 2, 3], [4, 5]], block_size=3, eos_id=0)
        >>> blocks, stats["dropped_tokens"]
        ([[1, 2, 3], [0, 4, 5]], 1)
    """
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if eos_id is not None:
        eos_id = token_id(eos_id, "eos_id")
    stream: list[int] = []
    for d, ids in enumerate(token_ids):
        try:
            stream.extend(map(operator.index, ids))  # a float id is an error, never truncated
        except TypeError:
            stream.extend(token_id(t, f"token_ids[{d}][{k}]") for k, t in enumerate(ids))
        if eos_id is not None:
            stream.append(eos_id)
    n_full = len(stream) // block_size
    blocks = [stream[i * block_size:(i + 1) * block_size] for i in range(n_full)]
    rest = stream[n_full * block_size:]
    if rest and not drop_last:
        blocks.append(rest)
    kept = sum(len(b) for b in blocks)
    stats = {
        "n_tokens": len(stream),
        "n_blocks": len(blocks),
        "dropped_tokens": len(stream) - kept,
        "packing_efficiency": kept / len(stream) if stream else 0.0,
    }
    return blocks, stats


def pack_texts(tokenizer, texts: Sequence[str], block_size: int, what: str):
    """Returns ``(dataset, stats)``: documents tokenized with ``datasets.map``, joined with EOS, packed
    into ``block_size`` blocks by ``lowres_adapt.data.pack_documents``."""
    from datasets import Dataset


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
    if "labels" not in ds.column_names:  # the model shifts them: every real token is a target
        ds = ds.map(lambda e: {"labels": e["input_ids"]}, desc=f"labels of {what}")
    for column in ("input_ids", "labels"):  # float ids would be truncated by the collator's tensor
        feature = ds.features.get(column)
        dtype = str(getattr(getattr(feature, "feature", None), "dtype", "int64"))
        if feature is not None and not dtype.startswith(("int", "uint")):
            raise TypeError(f"{what}: {column} holds {dtype} values; token ids must be integers and are never "
                            "truncated: convert them where they were made (e.g. tensor.long())")
    longest = max(len(x) for x in ds["input_ids"])
    if longest == 0:
        raise ValueError(f"{what} holds only empty examples")
    if context is not None and longest > context:
        raise ValueError(f"{what} has an example of {longest} tokens, longer than the model's context of "
                         f"{context}; truncate examples to <= {context} tokens")
    return ds

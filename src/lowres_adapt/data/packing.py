"""Training blocks: tokenized documents joined and cut into fixed-size blocks (``pack_documents``), a corpus
tokenized with ``datasets.map`` and packed batch by batch (``pack_texts``), and user datasets checked
(``as_dataset``).

Two packings (``PACKINGS``):

- ``"isolated"`` (the default of the recipes and the study): each document starts with the token the
  evaluator conditions on (``document_start_id``: BOS, else EOS) and ends with EOS; the position ids
  restart at 0 where a document starts, so transformers builds a block-diagonal causal mask and no
  token attends to another document. A document cut by a block boundary continues in the next block
  with positions from 0. Labels (``ignored_labels``): a document's first token is never trained as a
  prediction from the document before it, except the constant start token, which is::

      tokens     <s> a b c </s> <s> d e </s> <s> f
      positions   0  1 2 3  4    0  1 2  3    0  1
      labels      .  a b c </s> <s> d e </s> <s> f      (. = -100; <s> after </s> is a constant)

  Where BOS and EOS are one token (GPT-2, Qwen: ``<|endoftext|>``), that one token ends a document and
  opens the next: ``<e> a b c <e> d e <e> f`` with positions ``0 1 2 3 0 1 2 0 1``.
- ``"concatenated"``: documents joined with EOS (``a b c </s> d e </s> f``), attention across them: the
  blocks of releases before the isolated default, for comparison and reproduction.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Sequence

from .._utils import token_id

logger = logging.getLogger(__name__)

PACKINGS = ("isolated", "concatenated")

# Documents packed per ``datasets.map`` batch: the remainder under one block is dropped per batch,
# so a large batch keeps the packing efficiency near 1 while memory stays bounded.
_PACK_BATCH_DOCS = 10_000


def check_packing(packing: str) -> str:
    """Returns ``packing`` if it is one of ``PACKINGS``; else raises ``ValueError`` naming them.

    Example::

        >>> from lowres_adapt.data.packing import check_packing
        >>> check_packing("isolated")
        'isolated'
    """
    if packing not in PACKINGS:
        from .._utils import did_you_mean

        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}{did_you_mean(str(packing), PACKINGS)}")
    return packing


def document_start_id(tokenizer) -> int | None:
    """Returns the token each document starts with under isolated packing: BOS where the tokenizer has
    one, else EOS (None if it has neither). It is the token the evaluator conditions a document on.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["a b c"] * 10, vocab_size=260, kind="llama_bpe")
        >>> document_start_id(tok) == tok.bos_token_id != tok.eos_token_id
        True
    """
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def pack_documents(
    token_ids: Iterable[Sequence[int]],
    block_size: int,
    eos_id: int | None = None,
    *,
    bos_id: int | None = None,
    return_position_ids: bool = False,
    drop_last: bool = True,
):
    """Returns ``(blocks, stats)``, or ``(blocks, position_ids, stats)`` with ``return_position_ids=True``:
    tokenized documents joined (EOS after each) and cut into equal blocks.

    No padding is wasted: every block holds ``block_size`` real tokens, and a trailing remainder shorter
    than a block is dropped (``drop_last=True``) or kept as a shorter last block. With ``bos_id`` each
    document starts with BOS (where ``bos_id == eos_id`` one token between documents ends one and starts
    the next). ``position_ids`` restart at 0 at each document's start inside a block and at the start of
    every block (a document cut by a block boundary goes on from 0). ``stats`` has ``n_tokens`` (after
    adding BOS/EOS), ``n_documents``, ``n_blocks``, ``dropped_tokens`` and ``packing_efficiency`` (share
    of tokens that landed in a block). Without ``bos_id`` and position ids the blocks are those of
    ``packing="concatenated"``; the recipes' default (``"isolated"``) passes both (see the module notes).

    Example::

        >>> import lowres_adapt as la
        >>> blocks, stats = la.pack_documents([[1, 2, 3], [4, 5]], block_size=3, eos_id=0)
        >>> blocks, stats["dropped_tokens"]
        ([[1, 2, 3], [0, 4, 5]], 1)
        >>> blocks, pos, _ = la.pack_documents([[1, 2, 3], [4, 5]], block_size=4, eos_id=0, bos_id=9,
        ...                                    return_position_ids=True)
        >>> blocks, pos
        ([[9, 1, 2, 3], [0, 9, 4, 5]], [[0, 1, 2, 3], [0, 0, 1, 2]])
    """
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if eos_id is not None:
        eos_id = token_id(eos_id, "eos_id")
    if bos_id is not None:
        bos_id = token_id(bos_id, "bos_id")
    stream, starts = _stream(token_ids, eos_id, bos_id)
    n_full = len(stream) // block_size
    blocks = [stream[i * block_size:(i + 1) * block_size] for i in range(n_full)]
    rest = stream[n_full * block_size:]
    if rest and not drop_last:
        blocks.append(rest)
    kept = sum(len(b) for b in blocks)
    stats = {
        "n_tokens": len(stream),
        "n_documents": len(starts),
        "n_blocks": len(blocks),
        "dropped_tokens": len(stream) - kept,
        "packing_efficiency": kept / len(stream) if stream else 0.0,
    }
    if not return_position_ids:
        return blocks, stats
    return blocks, _positions(len(stream), starts, block_size, [len(b) for b in blocks]), stats


def _stream(token_ids: Iterable[Sequence[int]], eos_id: int | None, bos_id: int | None) -> tuple[list[int], list[int]]:
    """The joined token stream and the index where each document starts in it."""
    stream: list[int] = []
    starts: list[int] = []
    shared = bos_id is not None and bos_id == eos_id
    for k, ids in enumerate(token_ids):
        if shared and k > 0:
            starts.append(len(stream) - 1)  # the EOS that closed the document before opens this one
        else:
            starts.append(len(stream))
            if bos_id is not None:
                stream.append(bos_id)
        try:
            stream.extend(map(operator.index, ids))  # a float id is an error, never truncated
        except TypeError:
            stream.extend(token_id(t, f"token_ids[{k}][{j}]") for j, t in enumerate(ids))
        if eos_id is not None:
            stream.append(eos_id)
    return stream, starts


def _positions(n: int, starts: list[int], block_size: int, lengths: list[int]) -> list[list[int]]:
    """Each token's offset from the latest document start or block start (numpy: one pass, no loop)."""
    import numpy as np

    is_start = np.zeros(n, dtype=bool)
    is_start[np.asarray(starts, dtype=np.int64)[np.asarray(starts, dtype=np.int64) < n]] = True
    is_start[::block_size] = True
    index = np.arange(n, dtype=np.int64)
    latest = np.maximum.accumulate(np.where(is_start, index, 0))
    pos = index - latest
    return [pos[k * block_size:k * block_size + length].tolist() for k, length in enumerate(lengths)]


def ignored_labels(input_ids, position_ids, start_id: int | None):
    """Returns a boolean array (numpy or torch, as given): True where a token's label is ignored (-100) in
    an isolated block, because predicting it would read across a document boundary.

    That is every token at position 0 (a document's first token, or a block's first, whose label the
    model's shift never uses) except the constant document start token ``start_id``, predicted from the
    end of the document before it.

    Example::

        >>> import numpy as np
        >>> ids, pos = np.array([9, 1, 2, 0, 9, 4]), np.array([0, 1, 2, 3, 0, 1])
        >>> ignored_labels(ids, pos, 9).tolist(), ignored_labels(ids, pos, None).tolist()
        ([False, False, False, False, False, False], [True, False, False, False, True, False])
    """
    first = position_ids == 0
    if start_id is None:
        return first
    return first & (input_ids != start_id)


def tokenize_texts(tokenizer, texts: Sequence[str], what: str):
    """Returns a ``datasets.Dataset`` of the documents' token ids (``input_ids``, and their count
    ``n_tokens``), tokenized with ``datasets.map`` (batched; no special tokens: packing adds them)."""
    from datasets import Dataset

    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of documents, not one string; wrap it: [{what}]")
    docs = [t for t in texts if isinstance(t, str) and t.strip()]
    if not docs:
        raise ValueError(f"{what} has no non-empty document")

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": ids, "n_tokens": [len(x) for x in ids]}

    return Dataset.from_dict({"text": docs}).map(tokenize, batched=True, remove_columns=["text"],
                                                 desc=f"tokenize {what}")


def pack_tokenized(tokenized, tokenizer, block_size: int, what: str, *, packing: str = "isolated"):
    """Returns ``(dataset, stats)``: the documents of ``tokenize_texts`` packed into ``block_size`` blocks
    by ``pack_documents`` per ``datasets.map`` batch, joined with the tokenizer's EOS; with
    ``packing="isolated"`` each document also starts with ``document_start_id(tokenizer)`` and the
    dataset has ``position_ids``. ``stats`` adds ``packing`` and ``start_id`` to ``pack_documents``'."""
    check_packing(packing)
    eos = tokenizer.eos_token_id
    bos = document_start_id(tokenizer) if packing == "isolated" else None
    isolated = packing == "isolated"

    def pack(batch):
        out = pack_documents(batch["input_ids"], block_size, eos, bos_id=bos, return_position_ids=isolated)
        return {"input_ids": out[0], **({"position_ids": out[1]} if isolated else {})}

    packed = tokenized.map(pack, batched=True, batch_size=_PACK_BATCH_DOCS, remove_columns=tokenized.column_names,
                           desc=f"pack {what}")
    n_docs = len(tokenized)
    n_batches = -(-n_docs // _PACK_BATCH_DOCS)
    extra = (eos is not None) + (bos is not None and bos != eos)
    # pack_documents' stream per batch: the document tokens, EOS after each, BOS before each (once per
    # batch where BOS is EOS: the first document's opener)
    n_tokens = int(sum(tokenized["n_tokens"])) + n_docs * extra + (n_batches if bos is not None and bos == eos else 0)
    if len(packed) == 0:
        raise ValueError(f"{what} has {n_tokens} tokens, fewer than one block of block_size={block_size}; "
                         "lower block_size or give more text")
    kept = len(packed) * block_size
    stats = {"n_tokens": n_tokens, "n_documents": n_docs, "n_blocks": len(packed), "dropped_tokens": n_tokens - kept,
             "packing_efficiency": kept / n_tokens, "packing": packing, "start_id": bos}
    return packed, stats


def pack_texts(tokenizer, texts: Sequence[str], block_size: int, what: str = "texts", *, packing: str = "isolated"):
    """Returns ``(dataset, stats)``: documents tokenized with ``datasets.map`` and packed into
    ``block_size`` blocks by ``lowres_adapt.data.pack_documents`` (``tokenize_texts`` then
    ``pack_tokenized``). ``packing``: ``"isolated"`` (each document starts with BOS, else EOS, and has
    its own position ids: column ``position_ids``) or ``"concatenated"`` (joined with EOS only).

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300)
        >>> ds, stats = la.data.pack_texts(tok, la.sample_corpus("ba"), block_size=64)
        >>> ds.column_names, stats["packing"], stats["start_id"] == tok.bos_token_id
        (['input_ids', 'position_ids'], 'isolated', True)
    """
    check_packing(packing)
    return pack_tokenized(tokenize_texts(tokenizer, texts, what), tokenizer, block_size, what, packing=packing)


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

"""Training blocks from any corpus, once per tokenizer: ``pack_corpus`` packs a list of documents or a
corpus source (a file, a folder, ``hf:``) and keeps the result as Arrow files in a cache folder.

A corpus source is read as a stream into a memory-mapped Arrow dataset (``Dataset.from_generator``),
tokenized with ``datasets.map`` (batched, ``num_proc`` workers) and packed a thousand documents at a time
into blocks exactly as ``pack_texts`` packs a list (the same blocks), so memory stays flat in the corpus
size.

A cache entry ``<cache_dir>/<key>/`` is keyed by the tokenizer's fingerprint, the block size, the packing
and the documents' fingerprint. It is built in a temporary folder and renamed into place with a
``complete.json`` marker holding the key, so an entry a killed writer left half-written (no marker, or a
marker of another key) is never read: it is rebuilt. Builders of one entry take turns on a lock file, so
parallel workers tokenize it once.

Example::

    >>> import tempfile, lowres_adapt as la
    >>> docs = la.sample_corpus("ba")
    >>> tok = la.train_tokenizer(docs, vocab_size=300)
    >>> cache = tempfile.mkdtemp()
    >>> _, first = la.data.pack_corpus(tok, docs, 32, cache_dir=cache)
    >>> _, again = la.data.pack_corpus(tok, docs, 32, cache_dir=cache)
    >>> first["tokenized_from_cache"], again["tokenized_from_cache"], first["n_blocks"] == again["n_blocks"]
    (False, True, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._utils import FileLock, atomic_write_json, lock_is_stale
from .corpus import CorpusSplit, iter_corpus
from .packing import _PACK_BATCH_DOCS, check_packing, pack_texts, pack_tokenized

_FORMAT = 1  # version of a cache entry's layout
DEFAULT_PACKING = "isolated"  # recipe.train's packing (see packing.PACKINGS)


def tokenizer_fingerprint(tokenizer) -> str:
    """Returns a 16-character fingerprint of what decides a tokenizer's ids (its full definition, EOS and
    special tokens): equal for a tokenizer loaded twice, different after any change of vocabulary.

    Example::

        >>> import lowres_adapt as la
        >>> docs = la.sample_corpus("ba")
        >>> tokenizer_fingerprint(la.train_tokenizer(docs, vocab_size=300)) == \\
        ...     tokenizer_fingerprint(la.train_tokenizer(docs, vocab_size=300))
        True
    """
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps([tokenizer.eos_token_id, getattr(tokenizer, "special_tokens_map", {})], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()[:16]


def is_source(texts: Any) -> bool:
    """True when ``texts`` names a corpus source (a path, an ``hf:`` spec, a streamed split) rather than
    holding documents."""
    return isinstance(texts, (os.PathLike, CorpusSplit)) or (isinstance(texts, str) and (texts.startswith("hf:")
                                                                          or Path(texts).expanduser().exists()))


def source_fingerprint(source: str | os.PathLike) -> str:
    """Returns a fingerprint of a corpus source from its files' paths, sizes and modification times (a
    Hub dataset: its spec), so a changed file is a new corpus without reading it."""
    if isinstance(source, CorpusSplit):  # the source, and which of its documents the split takes
        return hashlib.sha256(f"{source_fingerprint(source.source)}{source.split}{source.seed}{source.text_field}"
                              .encode() + source.test_cut + source.valid_cut).hexdigest()[:16]
    h = hashlib.sha256(os.fspath(source).encode())
    if not (isinstance(source, str) and source.startswith("hf:")):
        path = Path(source).expanduser().resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            h.update(f"{f}\x00{st.st_size}\x00{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _docs_fingerprint(docs: Sequence[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(hashlib.sha256(d.encode()).digest())
    return h.hexdigest()[:16]


def pack_corpus(tokenizer, texts: Sequence[str] | str | os.PathLike, block_size: int, what: str = "train_texts", *,
                cache_dir: str | os.PathLike | None = None, packing: str = DEFAULT_PACKING,
                text_field: str = "text", num_proc: int | None = None, fingerprint: str | None = None):
    """Returns ``(dataset, stats)``: the corpus packed into ``block_size`` blocks, read from the cache
    when ``cache_dir`` holds them. ``stats`` adds ``tokenized_from_cache``, ``data_seconds`` and
    ``cache_key`` to ``pack_texts``'s.

    ``texts``: a list of documents, or a corpus source (``.txt``/``.jsonl`` file, folder, ``hf:`` spec;
    see ``load_corpus``) streamed into memory-mapped Arrow files and never held as a list. ``packing``
    (``"isolated"``, ``recipe.train``'s default, or ``"concatenated"``) is part of the key. ``fingerprint`` names the documents when the
    caller knows them (a study: its split's); else they are hashed (a list) or the source's files are
    (path, size, mtime). ``num_proc``: tokenizer processes of ``datasets.map`` for a source.
    """
    t0 = time.perf_counter()
    check_packing(packing)
    streamed = is_source(texts)
    if not streamed and isinstance(texts, str):
        raise TypeError(f"{what} must be a list of documents or a corpus path/'hf:' spec; {texts[:40]!r} is "
                        "neither an existing path nor an 'hf:' spec")

    def build(folder: Path | None):
        if streamed:
            return _pack_stream(tokenizer, texts, block_size, what, folder, text_field=text_field, num_proc=num_proc,
                                packing=packing)
        return pack_texts(tokenizer, texts, block_size, what, packing=packing)

    if cache_dir is None:
        ds, stats = build(None)
        return ds, {**stats, "tokenized_from_cache": False, "data_seconds": time.perf_counter() - t0,
                    "cache_key": None}
    if fingerprint is None:
        fingerprint = source_fingerprint(texts) if streamed else _docs_fingerprint(
            [t for t in texts if isinstance(t, str) and t.strip()])
    spec = {"format": _FORMAT, "tokenizer": tokenizer_fingerprint(tokenizer), "block_size": block_size,
            "packing": packing, "documents": fingerprint}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    entry = Path(cache_dir) / key
    lock = FileLock(Path(cache_dir) / f"{key}.lock")
    while True:
        hit = _read_entry(entry, key)
        if hit is not None:
            return hit[0], {**hit[1], "tokenized_from_cache": True, "data_seconds": time.perf_counter() - t0}
        if lock.acquire():
            break
        time.sleep(0.5)  # another worker builds this entry: wait for it, then read it
    try:
        hit = _read_entry(entry, key)  # built while we waited for the lock
        if hit is not None:
            return hit[0], {**hit[1], "tokenized_from_cache": True, "data_seconds": time.perf_counter() - t0}
        # killed builders' half-written entries: this key's (we hold its lock) and any whose lock is stale
        for leftover in [*Path(cache_dir).glob(f".{key}.partial-*"), *stale_partials(cache_dir)]:
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(cache_dir) / f".{key}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        ds, stats = build(tmp / "work")
        ds.save_to_disk(str(tmp / "blocks"))
        shutil.rmtree(tmp / "work", ignore_errors=True)
        stats = {**stats, "cache_key": key}
        atomic_write_json(tmp / "complete.json", {"key": key, "spec": spec, "stats": stats, "n_blocks": len(ds)})
        shutil.rmtree(entry, ignore_errors=True)  # a killed writer's leftovers: never read, replaced
        os.replace(tmp, entry)
        hit = _read_entry(entry, key)
        return hit[0], {**hit[1], "tokenized_from_cache": False, "data_seconds": time.perf_counter() - t0}
    finally:
        lock.release()


def _read_entry(entry: Path, key: str):
    """``(dataset, stats)`` of a complete entry of ``key``, else None (absent, half-written, other key)."""
    from datasets import load_from_disk

    try:
        marker = json.loads((entry / "complete.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if marker.get("key") != key:
        return None
    try:
        ds = load_from_disk(str(entry / "blocks"))
    except (OSError, ValueError, FileNotFoundError):
        return None
    if len(ds) != marker.get("n_blocks"):
        return None
    return ds, dict(marker["stats"])


def _pack_stream(tokenizer, source, block_size: int, what: str, folder: Path | None, *, text_field: str,
                 num_proc: int | None, packing: str = DEFAULT_PACKING):
    """The streamed path: documents -> Arrow (``from_generator``) -> ``map`` tokenize -> ``map`` pack."""
    import pyarrow.compute as pc
    from datasets import Dataset

    if folder is None:  # no cache: temporary Arrow files, removed with the dataset
        folder = Path(tempfile.mkdtemp(prefix="lowres-adapt-blocks-"))
        owned = True
    else:
        folder.mkdir(parents=True, exist_ok=True)
        owned = False
    eos = tokenizer.eos_token_id
    src = source if isinstance(source, CorpusSplit) else os.fspath(source)
    docs = Dataset.from_generator(_documents, gen_kwargs={"source": src, "text_field": text_field},
                                  cache_dir=str(folder / "hf"))
    if len(docs) == 0:
        raise ValueError(f"{what} ({src!r}) has no non-empty document")

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        extra = 1 if packing == "concatenated" else 0  # the EOS that joins them (pack_tokenized adds its own)
        return {"input_ids": ids, "n_tokens": [len(x) + extra for x in ids]}

    tokenized = docs.map(tokenize, batched=True, remove_columns=["text"], num_proc=num_proc,
                         cache_file_name=str(folder / "tokens.arrow"), desc=f"tokenize {what}")
    if packing != "concatenated":  # isolated: pack_texts' own batch packer, on the memory-mapped token ids
        packed, stats = pack_tokenized(tokenized, tokenizer, block_size, what, packing=packing)
        if owned:
            weakref.finalize(packed, shutil.rmtree, str(folder), True)
        return packed, stats
    n_tokens = int(pc.sum(tokenized.data.column("n_tokens")).as_py())
    packed = Dataset.from_generator(_packed_blocks, gen_kwargs={"tokens": tokenized, "block_size": block_size,
                                                                "eos": eos}, cache_dir=str(folder / "hf"))
    if len(packed) == 0:
        raise ValueError(f"{what} has {n_tokens} tokens, fewer than one block of block_size={block_size}; "
                         "lower block_size or give more text")
    if owned:
        weakref.finalize(packed, shutil.rmtree, str(folder), True)
    kept = len(packed) * block_size
    return packed, {"n_tokens": n_tokens, "n_blocks": len(packed), "dropped_tokens": n_tokens - kept,
                    "packing_efficiency": kept / n_tokens}


def _packed_blocks(tokens, block_size: int, eos: int | None, chunk: int = 1000) -> Iterator[dict]:
    """Yields the blocks ``pack_texts`` makes (documents joined with EOS, the remainder under one block
    dropped per ``_PACK_BATCH_DOCS`` documents), reading ``chunk`` documents at a time as numpy arrays:
    memory holds one chunk and one partial block, whatever the corpus size."""
    import numpy as np

    column = tokens.data.column("input_ids")
    n = len(tokens)
    for group in range(0, n, _PACK_BATCH_DOCS):
        carry = np.empty(0, dtype=np.int64)  # each group starts afresh, as each map batch of pack_texts does
        for start in range(group, min(group + _PACK_BATCH_DOCS, n), chunk):
            docs = column.slice(start, min(chunk, group + _PACK_BATCH_DOCS - start)).combine_chunks()
            ids = docs.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            if eos is not None:  # EOS after every document
                ids = np.insert(ids, docs.offsets.to_numpy()[1:] - docs.offsets.to_numpy()[0], eos)
            carry = np.concatenate([carry, ids])
            full = len(carry) // block_size
            for row in carry[:full * block_size].reshape(full, block_size).tolist():
                yield {"input_ids": row}
            carry = carry[full * block_size:]


def _documents(source: str | CorpusSplit, text_field: str) -> Iterator[dict]:
    for doc in (source if isinstance(source, CorpusSplit) else iter_corpus(source, text_field)):
        yield {"text": doc}


def stale_partials(cache_dir: str | os.PathLike) -> list[Path]:
    """Returns the half-written entries killed builders left in ``cache_dir`` (safe to delete)."""
    root = Path(cache_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.glob(".*.partial-*"):
        lock = root / (p.name.split(".partial-")[0].lstrip(".") + ".lock")
        if not lock.exists() or lock_is_stale(lock):
            out.append(p)
    return out

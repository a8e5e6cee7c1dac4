"""Corpus input and document-level splits.

``load_corpus`` reads documents from plain text, JSON Lines, a folder of those, or a Hugging Face dataset;
``split_documents`` cuts them into train/valid/test by document (never by token), deterministically and
independently of any tokenizer.

Example::

    >>> import lowres_adapt as la
    >>> docs = la.sample_corpus("ba")
    >>> splits = la.split_documents(docs, valid=0.1, test=0.1, seed=0)
    >>> sum(len(v) for v in splits.values()) == len(docs)
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._utils import did_you_mean

_TEXT_SUFFIXES = (".txt",)
_JSONL_SUFFIXES = (".jsonl",)
_NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD", None)
_SPLIT_NAMES = ("train", "valid", "test")


# --------------------------------------------------------------------------------------------- reading
def iter_corpus(
    source: str | os.PathLike,
    text_field: str = "text",
    *,
    normalization: str | None = "NFC",
    errors: str = "strict",
) -> Iterator[str]:
    """Yields documents from ``source`` one at a time, for corpora larger than memory.

    Same sources and options as :func:`load_corpus`; empty documents are skipped. Hugging Face datasets
    are read with ``streaming=True``.

    Example::

        >>> import lowres_adapt as la
        >>> first = next(la.iter_corpus(la.sample_corpus_path("ba")))
        >>> isinstance(first, str) and len(first) > 0
        True
    """
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of {_NORMALIZATIONS}")
    if errors not in ("strict", "replace", "ignore"):
        raise ValueError(f"errors={errors!r} must be 'strict', 'replace' or 'ignore'")
    for doc in _iter_raw(source, text_field, errors=errors, streaming=True):
        if normalization:
            doc = unicodedata.normalize(normalization, doc)
        doc = doc.strip()
        if doc:
            yield doc


def load_corpus(
    source: str | os.PathLike,
    text_field: str = "text",
    *,
    normalization: str | None = "NFC",
    errors: str = "strict",
) -> list[str]:
    """Returns the documents of ``source`` as a list of strings, one per document.

    ``source`` is one of:

    - a ``.txt`` file: documents separated by one or more blank lines;
    - a ``.jsonl`` file: one JSON object per line, the document in ``text_field``;
    - a folder: every ``.txt``/``.jsonl`` file in it (recursively, in sorted path order);
    - ``"hf:<dataset id or local dataset folder>[:<config>][@<split>]"``, read with
      ``datasets.load_dataset`` (or ``datasets.load_from_disk`` for a saved dataset folder); the split
      defaults to ``train``.

    Text is Unicode-normalised (``normalization="NFC"`` by default, so a letter typed as base + combining
    mark equals its precomposed form) and stripped; empty documents are dropped. Invalid UTF-8 raises an
    error naming the file and byte offset unless ``errors="replace"`` or ``"ignore"``.

    Example::

        >>> import lowres_adapt as la
        >>> docs = la.load_corpus(la.sample_corpus_path("ba"))
        >>> len(docs) > 10
        True

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for an empty corpus, a malformed
    JSONL line (naming file, line and the keys it has) or invalid UTF-8.
    """
    docs = list(iter_corpus(source, text_field, normalization=normalization, errors=errors))
    if not docs:
        raise ValueError(
            f"corpus {str(source)!r} holds no non-empty document after normalisation; "
            "check the path, the text_field, and that documents are separated by blank lines"
        )
    return docs


def _iter_raw(source, text_field: str, *, errors: str, streaming: bool) -> Iterator[str]:
    if isinstance(source, str) and source.startswith("hf:"):
        yield from _iter_hf(source, text_field, streaming=streaming)
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"corpus path does not exist: {str(path)!r}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _TEXT_SUFFIXES + _JSONL_SUFFIXES)
        if not files:
            raise ValueError(f"folder {str(path)!r} holds no .txt or .jsonl file")
        for f in files:
            yield from _iter_file(f, text_field, errors=errors)
    else:
        yield from _iter_file(path, text_field, errors=errors)


def _iter_file(path: Path, text_field: str, *, errors: str) -> Iterator[str]:
    if path.suffix in _JSONL_SUFFIXES:
        yield from _iter_jsonl(path, text_field, errors=errors)
    elif path.suffix in _TEXT_SUFFIXES:
        yield from _iter_txt(path, errors=errors)
    else:
        raise ValueError(
            f"cannot read {str(path)!r}: unsupported file type {path.suffix!r}; use .txt (documents separated "
            "by blank lines), .jsonl, a folder of those, or an 'hf:<dataset>' spec"
        )


def _decoded_lines(path: Path, errors: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) pairs, with the byte offset of any invalid UTF-8 reported."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{str(path)!r} is not valid UTF-8: byte offset {offset + e.start} (line {lineno}); "
                    "re-encode the file as UTF-8, or pass errors='replace' to load_corpus"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # byte-order mark
            offset += len(raw)
            yield lineno, line


def _iter_txt(path: Path, *, errors: str) -> Iterator[str]:
    buf: list[str] = []
    for _, line in _decoded_lines(path, errors):
        if line.strip():
            buf.append(line.rstrip("\r\n"))
        elif buf:
            yield "\n".join(buf)
            buf = []
    if buf:
        yield "\n".join(buf)


def iter_jsonl_records(path: str | Path, *, errors: str = "strict") -> Iterator[tuple[int, dict]]:
    r"""Yields ``(line number, object)`` for each non-blank line of a JSONL file; every reader of JSONL in the
    library goes through it, so a bad line is reported the same way everywhere (file, line, what is wrong).

    Example::

        >>> import tempfile
        >>> p = tempfile.mktemp(suffix=".jsonl")
        >>> _ = open(p, "w").write('{"text": "a"}\n\n{"text": "b"}\n')
        >>> list(iter_jsonl_records(p))
        [(1, {'text': 'a'}), (3, {'text': 'b'})]
    """
    path = Path(path)
    for lineno, line in _decoded_lines(path, errors):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{str(path)!r} line {lineno} is not valid JSON: {e.msg}; "
                             "each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise ValueError(f"{str(path)!r} line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def _iter_jsonl(path: Path, text_field: str, *, errors: str) -> Iterator[str]:
    for lineno, record in iter_jsonl_records(path, errors=errors):
        if text_field not in record:
            raise ValueError(
                f"{str(path)!r} line {lineno} has no field {text_field!r}{did_you_mean(text_field, record)}; "
                f"its keys are {sorted(record)}. Pass text_field=<one of them>"
            )
        value = record[text_field]
        if not isinstance(value, str):
            raise ValueError(
                f"{str(path)!r} line {lineno}: field {text_field!r} holds {type(value).__name__}, not a string"
            )
        yield value


def _parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    body = spec[len("hf:"):]
    split = "train"
    if "@" in body:
        body, split = body.rsplit("@", 1)
    name, config = body, None
    # a config follows the last ':' unless that ':' belongs to a Windows drive letter
    if ":" in body and not (len(body) > 1 and body[1] == ":" and body.count(":") == 1):
        name, config = body.rsplit(":", 1)
    if not name or not split:
        raise ValueError(f"bad dataset spec {spec!r}; use 'hf:<dataset id>[:<config>][@<split>]'")
    return name, config or None, split


def _iter_hf(spec: str, text_field: str, *, streaming: bool) -> Iterator[str]:
    import datasets

    name, config, split = _parse_hf_spec(spec)
    local = Path(name).expanduser()
    if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
        ds = datasets.load_from_disk(str(local))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"dataset {name!r} has no split {split!r}; it has {sorted(ds)}")
            ds = ds[split]
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split, streaming=streaming and not local.is_dir())
        except FileNotFoundError as e:
            raise FileNotFoundError(f"dataset {name!r} not found (from {spec!r}): {e}") from e
        except ValueError as e:
            if "split" in str(e).lower():
                raise ValueError(f"dataset {name!r}: {e}. Name the split as 'hf:{name}@<split>'") from e
            raise
    columns = getattr(ds, "column_names", None)
    if columns is not None and text_field not in columns:
        raise ValueError(
            f"dataset {spec!r} has no column {text_field!r}{did_you_mean(text_field, columns)}; "
            f"its columns are {list(columns)}. Pass text_field=<one of them>"
        )
    for row in ds:
        value = row[text_field]
        if isinstance(value, str):
            yield value


def load_splits(
    source: str | os.PathLike,
    text_field: str = "text",
    *,
    normalization: str | None = "NFC",
    errors: str = "strict",
) -> dict[str, list[str]]:
    """Returns ready-made ``{"train", "valid", "test"}`` splits from a folder holding one file per split.

    Files are matched by name: ``*train*``, ``*valid*``/``*val*``/``*dev*`` and ``*test*`` with a ``.txt``
    or ``.jsonl`` suffix (``corpus-train.jsonl``, ``valid.txt``, ...). Other files in the folder are ignored.

    Example::

        >>> import json, tempfile, pathlib, lowres_adapt as la
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for s in ("train", "valid", "test"):
        ...     _ = (d / f"{s}.txt").write_text(f"{s} one\\n\\n{s} two\\n", encoding="utf-8")
        >>> la.load_splits(d)["valid"]
        ['valid one', 'valid two']
    """
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"load_splits needs a folder with train/valid/test files, got {str(folder)!r}")
    patterns = {"train": ("train",), "valid": ("valid", "val", "dev"), "test": ("test",)}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _TEXT_SUFFIXES + _JSONL_SUFFIXES)
    out: dict[str, list[str]] = {}
    for split, keys in patterns.items():
        matches = [p for p in files if any(_name_has(p.stem.lower(), k) for k in keys)]
        if len(matches) != 1:
            raise ValueError(
                f"folder {str(folder)!r}: expected exactly one file for the {split!r} split "
                f"(names containing {' / '.join(keys)}), found {[p.name for p in matches]}"
            )
        out[split] = load_corpus(matches[0], text_field, normalization=normalization, errors=errors)
    return out


def _name_has(stem: str, key: str) -> bool:
    parts = stem.replace("_", "-").replace(".", "-").split("-")
    return key in parts or stem == key


def has_splits(source: str | os.PathLike) -> bool:
    """True when ``source`` is a folder that :func:`load_splits` can read (one file per split)."""
    try:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            return False
        stems = [p.stem.lower() for p in folder.iterdir()
                 if p.is_file() and p.suffix in _TEXT_SUFFIXES + _JSONL_SUFFIXES]
        return all(sum(any(_name_has(s, k) for k in keys) for s in stems) == 1
                   for keys in (("train",), ("valid", "val", "dev"), ("test",)))
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- splits
def _doc_key(doc: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{doc}".encode()).digest()


def split_documents(
    docs: Sequence[str], valid: float = 0.05, test: float = 0.05, seed: int = 0
) -> dict[str, list[str]]:
    """Returns ``{"train": [...], "valid": [...], "test": [...]}``, a document-level split of ``docs``.

    The assignment depends only on the set of documents and ``seed`` (each distinct document is ranked by a
    seeded hash of its text), so it is deterministic, independent of input order and of any tokenizer, and
    identical documents always land in the same split. Within a split, documents keep corpus order.
    A non-zero fraction always gets at least one document.

    Example::

        >>> import lowres_adapt as la
        >>> docs = [f"document {i}" for i in range(100)]
        >>> s = la.split_documents(docs, valid=0.1, test=0.2, seed=0)
        >>> [len(s[k]) for k in ("train", "valid", "test")]
        [70, 10, 20]
        >>> rev = la.split_documents(list(reversed(docs)), valid=0.1, test=0.2, seed=0)
        >>> sorted(rev["test"]) == sorted(s["test"])          # input order does not matter
        True
    """
    for name, frac in (("valid", valid), ("test", test)):
        if not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ValueError(f"split fraction {name}={frac!r} must be in [0, 1)")
    if valid + test >= 1:
        raise ValueError(f"valid + test = {valid + test} leaves no training documents; use fractions summing below 1")
    docs = list(docs)
    unique = list(dict.fromkeys(docs))
    n = len(unique)
    n_valid = max(1, round(valid * n)) if valid > 0 else 0
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_valid - n_test < 1:
        raise ValueError(
            f"{n} distinct documents are too few for valid={valid}, test={test} "
            f"({n_valid} valid + {n_test} test leaves no training document); add documents or lower the fractions"
        )
    ranked = sorted(unique, key=lambda d: _doc_key(d, seed))
    assignment = {d: "test" for d in ranked[:n_test]}
    assignment.update({d: "valid" for d in ranked[n_test:n_test + n_valid]})
    out: dict[str, list[str]] = {k: [] for k in _SPLIT_NAMES}
    for d in docs:
        out[assignment.get(d, "train")].append(d)
    return out


def split_fingerprint(splits: dict[str, Sequence[str]]) -> str:
    """Returns a 12-character hex fingerprint of a split: equal splits give equal fingerprints.

    Example::

        >>> import lowres_adapt as la
        >>> s = la.split_documents([f"d{i}" for i in range(20)], seed=1)
        >>> la.split_fingerprint(s) == la.split_fingerprint(la.split_documents([f"d{i}" for i in range(20)], seed=1))
        True
    """
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(f"[{name}]".encode())
        for doc in splits[name]:
            h.update(hashlib.sha256(doc.encode()).digest())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------------------------- streamed splits
@dataclass(frozen=True)
class CorpusSplit:
    """One split of a corpus source, read as a stream: iterating it reads the source and yields the
    split's documents, in corpus order; ``len()`` is its document count. What :func:`split_source`
    returns; ``recipe.train`` and ``pack_corpus`` take it as they take a path.

    Example::

        >>> import lowres_adapt as la
        >>> splits = la.data.split_source(la.sample_corpus_path("ba"), valid=0.1, test=0.1)
        >>> list(splits["test"]) == la.split_documents(la.sample_corpus("ba"), valid=0.1, test=0.1)["test"]
        True
    """

    source: str
    split: str
    text_field: str
    seed: int
    test_cut: bytes  # documents whose seeded hash key is <= test_cut are test; <= valid_cut valid
    valid_cut: bytes
    n_documents: int

    def assign(self, doc: str) -> str:
        key = _doc_key(doc, self.seed)
        return "test" if key <= self.test_cut else "valid" if key <= self.valid_cut else "train"

    def __iter__(self) -> Iterator[str]:
        for doc in iter_corpus(self.source, self.text_field):
            if self.assign(doc) == self.split:
                yield doc

    def __len__(self) -> int:
        return self.n_documents


def split_source(source: str | os.PathLike, valid: float = 0.05, test: float = 0.05, seed: int = 0,
                 text_field: str = "text") -> dict[str, CorpusSplit]:
    """Returns ``{"train", "valid", "test"}`` :class:`CorpusSplit` streams of a corpus source (a file, a
    folder, an ``hf:`` spec), with the assignment :func:`split_documents` gives the same documents as a
    list: each distinct document ranked by its seeded hash, the lowest ``test`` share to test, the next
    ``valid`` share to valid. One pass over the source keeps only the hash keys (32 bytes a distinct
    document), never the texts.

    Example::

        >>> import lowres_adapt as la
        >>> s = la.data.split_source(la.sample_corpus_path("ba"), valid=0.1, test=0.1, seed=0)
        >>> [len(s[k]) for k in ("train", "valid", "test")] == [len(v) for v in
        ...     la.split_documents(la.sample_corpus("ba"), valid=0.1, test=0.1, seed=0).values()]
        True
    """
    for name, frac in (("valid", valid), ("test", test)):
        if not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ValueError(f"split fraction {name}={frac!r} must be in [0, 1)")
    if valid + test >= 1:
        raise ValueError(f"valid + test = {valid + test} leaves no training documents; use fractions summing below 1")
    counts = Counter(_doc_key(doc, seed) for doc in iter_corpus(source, text_field))
    n = len(counts)
    n_valid = max(1, round(valid * n)) if valid > 0 else 0
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_valid - n_test < 1:
        raise ValueError(f"{n} distinct documents are too few for valid={valid}, test={test}; add documents or "
                         "lower the fractions")
    ranked = sorted(counts)
    low = b""  # below every key: an empty split
    test_cut = ranked[n_test - 1] if n_test else low
    valid_cut = ranked[n_test + n_valid - 1] if n_valid else test_cut
    sizes = {"test": sum(counts[k] for k in ranked[:n_test]),
             "valid": sum(counts[k] for k in ranked[n_test:n_test + n_valid])}
    sizes["train"] = sum(counts.values()) - sizes["test"] - sizes["valid"]
    return {name: CorpusSplit(os.fspath(source), name, text_field, seed, test_cut, valid_cut, sizes[name])
            for name in _SPLIT_NAMES}

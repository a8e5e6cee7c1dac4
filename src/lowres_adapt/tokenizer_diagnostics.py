"""Tokenizer diagnostics: is this tokenizer fit for the language, before anyone trains with it?

``diagnose_tokenizer`` measures how a tokenizer cuts text of a language and turns the numbers into
plain-language warnings; ``compare_tokenizers`` puts several tokenizers side by side.

Definitions (all pooled over the corpus: sums first, one division at the end):

- **word**: a whitespace-separated string, as ``str.split()`` sees it (punctuation stays attached).
- **tokens of a word**: the tokens whose character span overlaps the word. Each text is tokenized once,
  in context, with character offsets, and tokens are mapped to words through those offsets. Tokenizing
  word by word would give different counts: a byte-level BPE (GPT-2 style) tokenizes " word" (with the
  leading space it has inside running text) differently from "word" at the start of a string, and
  SentencePiece-style tokenizers add a "▁" prefix; the in-context count is what the model sees.
  A token that is only whitespace belongs to no word; a token that spans two words counts for both.
- **fertility** = Σ tokens of each word / number of words; **continued_word_rate** = share of words
  cut into 2 or more tokens.
- **chars_per_token**, **bytes_per_token** (UTF-8) = characters (bytes) of the texts / all tokens.
- **unk_rate** = tokens equal to the model's unknown token / all tokens (byte-level BPE has none).
- **byte_fallback_rate** = byte-piece tokens / all tokens: SentencePiece ``<0xNN>`` tokens, and
  tokens whose bytes are not complete UTF-8 characters (a byte-level BPE token holding part of a
  character's bytes).
- **letter_coverage**: per special letter of the language (key: the lower-case letter; both cases are
  counted): ``count``, ``whole_share`` (share of occurrences covered by exactly one token whose decoded
  text holds the letter, so a letter split across byte tokens, or swallowed by ``[UNK]``, is not whole)
  and ``in_vocab`` (some non-special vocabulary token decodes to text containing the letter).
- **roundtrip_ok**: ``decode(encode(text)) == text`` for every text (decoding with the tokenizer's own
  decoder, special tokens kept); the first mismatches are kept with their position.
- **parity** = Σ tokens of target sentences / Σ tokens of reference sentences over parallel pairs
  (Petrov et al. 2023, "Language model tokenizers introduce unfairness between languages").

Texts are NFC-normalised first (``normalization="NFC"``), as :func:`lowres_adapt.load_corpus` does,
so a letter typed as base letter + combining mark counts as the letter. Special tokens are not added.
Texts stream through in batches (one batched Rust ``encode_batch`` call each), so memory is bounded by
the batch, not the corpus.

Example::

    >>> import lowres_adapt as la
    >>> tok = la.train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300)
    >>> report = la.diagnose_tokenizer(tok, ["һаумыһығыҙ дуҫтар"], progress=False)
    >>> report.letter_coverage["ҙ"]["whole_share"], report.byte_fallback_rate > 0.5
    (0.0, True)
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .languages import BASHKIR, LanguageProfile, get_language

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD", None)


# --------------------------------------------------------------------------------------------- config
@dataclass
class DiagnosticThresholds:
    """Limits above (or below) which ``diagnose_tokenizer`` writes a warning; ``None`` turns one off.

    Example::

        >>> import lowres_adapt as la
        >>> la.DiagnosticThresholds(max_fertility=2.5).max_byte_fallback_rate
        0.05
    """

    max_byte_fallback_rate: float | None = field(
        default=0.05, metadata={"help": "Warn when more than this share of tokens are byte pieces "
                                "(<0xNN> or partial UTF-8): the language is spelled byte by byte."})
    max_fertility: float | None = field(
        default=3.0, metadata={"help": "Warn when words take more than this many tokens on average."})
    max_unk_rate: float | None = field(
        default=0.001, metadata={"help": "Warn when more than this share of tokens are the unknown token "
                                 "(0.001 = 0.1%): that text is lost to the model."})
    max_roundtrip_failures: int | None = field(
        default=0, metadata={"help": "Warn when more than this many texts fail decode(encode(text)) == text "
                             "(0: any failure warns)."})
    min_letter_whole_share: float | None = field(
        default=0.5, metadata={"help": "Warn about a special letter whose occurrences stay inside one token "
                               "holding the whole character less often than this."})
    max_parity: float | None = field(
        default=1.5, metadata={"help": "Warn when the language needs more than this many times the tokens of "
                               "the reference language for the same content (parallel sentences)."})

    def __post_init__(self) -> None:
        for name in ("max_byte_fallback_rate", "max_unk_rate", "min_letter_whole_share"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"DiagnosticThresholds.{name} must be a share in [0, 1] or None, got {value!r}")
        for name in ("max_fertility", "max_parity"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"DiagnosticThresholds.{name} must be a positive number or None, got {value!r}")
        value = self.max_roundtrip_failures
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(
                f"DiagnosticThresholds.max_roundtrip_failures must be an int >= 0 or None, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DiagnosticThresholds:
        """Thresholds from a dict made by ``to_dict``; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DiagnosticThresholds keys {unknown}; known: {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------- results
@dataclass
class TokenizerReport:
    """What ``diagnose_tokenizer`` measured; ``to_dict()`` gives every field as JSON-friendly data.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["a cat sat"] * 20, vocab_size=260)
        >>> r = la.diagnose_tokenizer(tok, ["a cat"], language="en", progress=False)
        >>> r.n_words, r.fertility, r.roundtrip_ok
        (2, 1.0, True)
    """

    tokenizer_name: str
    language: str
    vocab_size: int
    n_texts: int
    n_words: int
    n_tokens: int
    n_chars: int
    n_bytes: int
    fertility: float
    continued_word_rate: float
    chars_per_token: float
    bytes_per_token: float
    unk_rate: float
    byte_fallback_rate: float
    n_unk_tokens: int
    n_byte_fallback_tokens: int
    roundtrip_ok: bool
    n_roundtrip_failures: int
    roundtrip_mismatches: list[dict[str, Any]]
    letter_coverage: dict[str, dict[str, Any]]
    thresholds: dict[str, Any]
    warnings: list[str]
    normalization: str | None = "NFC"
    parity: float | dict[str, float] | None = None
    n_parallel_pairs: int | dict[str, int] | None = None

    @property
    def is_risky(self) -> bool:
        """True when any threshold tripped (the report has warnings)."""
        return bool(self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (a deep copy); ``parity`` is present only when parallel pairs were given."""
        d = asdict(self)
        if self.parity is None:
            d.pop("parity")
            d.pop("n_parallel_pairs")
        return d

    def to_markdown(self) -> str:
        """The report as Markdown: a metric table, a letter table, the round-trip mismatches and warnings."""
        lines = [f"### Tokenizer `{self.tokenizer_name}` on {self.language} ({self.n_texts} texts)", "",
                 "| metric | value |", "| --- | --- |"]
        rows = [("vocabulary size", self.vocab_size), ("words", self.n_words), ("tokens", self.n_tokens),
                ("characters", self.n_chars), ("UTF-8 bytes", self.n_bytes),
                ("fertility (tokens per word)", self.fertility), ("continued-word rate", self.continued_word_rate),
                ("characters per token", self.chars_per_token), ("bytes per token", self.bytes_per_token),
                ("UNK rate", self.unk_rate), ("byte-fallback rate", self.byte_fallback_rate),
                ("round trip ok", f"{self.roundtrip_ok} ({self.n_roundtrip_failures} failures)")]
        if self.parity is not None:
            parities = self.parity if isinstance(self.parity, dict) else {"reference": self.parity}
            rows += [(f"parity vs {k}", v) for k, v in parities.items()]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
        if self.letter_coverage:
            lines += ["", "| letter | count | whole share | in vocabulary |", "| --- | --- | --- | --- |"]
            lines += [f"| {c} | {v['count']} | {_fmt(v['whole_share'])} | {v['in_vocab']} |"
                      for c, v in self.letter_coverage.items()]
        if self.roundtrip_mismatches:
            lines += ["", "Round-trip mismatches (first ones):", ""]
            lines += [f"- text {m['index']}, character {m['position']}: `{m['original']!r}` -> "
                      f"`{m['decoded']!r}`" for m in self.roundtrip_mismatches]
        lines += ["", "Warnings:" if self.warnings else "No warnings.", ""]
        lines += [f"- {w}" for w in self.warnings]
        return "\n".join(lines).rstrip() + "\n"


class TokenizerComparison(list):
    """A side-by-side table: a list of dicts, one row per tokenizer; ``.reports`` holds the full reports.

    Example::

        >>> import lowres_adapt as la
        >>> a = la.train_tokenizer(["a cat sat"] * 20, vocab_size=260)
        >>> b = la.train_tokenizer(["a cat sat"] * 20, vocab_size=260, kind="wordpiece")
        >>> table = la.compare_tokenizers([a, b], ["a cat"], language="en", names=["bpe", "wp"], progress=False)
        >>> [row["tokenizer"] for row in table]
        ['bpe', 'wp']
    """

    def __init__(self, rows: Iterable[dict[str, Any]] = (), reports: Sequence[TokenizerReport] = ()):
        super().__init__(rows)
        self.reports = list(reports)

    def to_markdown(self, digits: int = 3) -> str:
        """The table as GitHub Markdown, numbers with ``digits`` significant digits."""
        if not self:
            return ""
        columns = list(dict.fromkeys(k for row in self for k in row))
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for row in self:
            lines.append("| " + " | ".join(_fmt(row.get(c), digits) for c in columns) + " |")
        return "\n".join(lines) + "\n"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v, digits)}" for k, v in value.items())
    return str(value)


# --------------------------------------------------------------------------------------------- public API
def diagnose_tokenizer(
    tokenizer_or_path: Any,
    texts: Iterable[str],
    language: str | LanguageProfile = BASHKIR,
    parallel: Iterable[tuple[str, str]] | Mapping[str, Iterable[tuple[str, str]]] | None = None,
    *,
    thresholds: DiagnosticThresholds | Mapping[str, Any] | None = None,
    name: str | None = None,
    normalization: str | None = "NFC",
    batch_size: int = 512,
    max_batch_chars: int = 1_000_000,
    max_examples: int = 5,
    progress: bool | None = None,
) -> TokenizerReport:
    """Returns a :class:`TokenizerReport` of how ``tokenizer_or_path`` cuts ``texts`` of ``language``.

    ``tokenizer_or_path``: a fast ``transformers`` tokenizer, a ``tokenizers.Tokenizer``, or a path / hub
    id for ``AutoTokenizer.from_pretrained``. ``texts``: any iterable of strings (a generator streams; a
    batch holds at most ``batch_size`` texts and about ``max_batch_chars`` characters). ``parallel``:
    ``[(target_sentence, reference_sentence), ...]`` gives ``parity`` (a float), or
    ``{"ru": pairs, "en": pairs}`` gives one parity per reference (a dict). ``progress``: a tqdm bar
    (``None``: only on a terminal). The metric definitions are in the module docstring.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300)
        >>> r = la.diagnose_tokenizer(tok, ["ҡар яуа"], parallel=[("ҡар", "snow")], progress=False)
        >>> r.letter_coverage["ҡ"]["count"], r.parity > 1
        (1, True)
        >>> any("byte" in w for w in r.warnings)
        True
    """
    lang = get_language(language)
    limits = _thresholds(thresholds)
    _check_options(normalization, batch_size, max_batch_chars, max_examples)
    tok = _Tok.load(tokenizer_or_path, name)
    acc = _Accumulator(tok, lang, max_examples)
    for start, batch in _batches(texts, normalization, batch_size, max_batch_chars, progress, "texts"):
        acc.update(batch, start)
    parity, n_pairs = _parity([tok], parallel, normalization, batch_size)
    return acc.report(limits, normalization, parity[0], n_pairs)


def compare_tokenizers(
    tokenizers: Sequence[Any],
    texts: Iterable[str],
    language: str | LanguageProfile = BASHKIR,
    *,
    names: Sequence[str] | None = None,
    parallel: Iterable[tuple[str, str]] | Mapping[str, Iterable[tuple[str, str]]] | None = None,
    thresholds: DiagnosticThresholds | Mapping[str, Any] | None = None,
    normalization: str | None = "NFC",
    batch_size: int = 512,
    max_batch_chars: int = 1_000_000,
    progress: bool | None = None,
) -> TokenizerComparison:
    """Returns a :class:`TokenizerComparison` (list of dicts, one row per tokenizer, ``.to_markdown()``).

    Texts are read once (a generator works) and every batch goes to every tokenizer. Names come from
    ``names`` or each tokenizer's ``name_or_path``. Each row holds the headline metrics, the smallest
    special-letter ``whole_share``, the letters below the threshold, ``parity`` when ``parallel`` is given,
    and the number of warnings; ``table.reports[i]`` is tokenizer i's full :class:`TokenizerReport`.

    Example::

        >>> import lowres_adapt as la
        >>> en = ["the cat sat on the mat"] * 20
        >>> ba = ["ҡар яуа, ҡыш етте"] * 20
        >>> table = la.compare_tokenizers([la.train_tokenizer(en, 300), la.train_tokenizer(ba, 300)],
        ...                               ba[:2], names=["en-bpe", "ba-bpe"], progress=False)
        >>> table[0]["fertility"] > table[1]["fertility"]
        True
        >>> print(table.to_markdown().splitlines()[0][:40])
        | tokenizer | vocab_size | fertility |
    """
    if isinstance(tokenizers, (str, os.PathLike)) or not isinstance(tokenizers, Sequence) or not tokenizers:
        raise ValueError("compare_tokenizers needs a non-empty list of tokenizers (or paths), "
                         f"got {type(tokenizers).__name__}; use diagnose_tokenizer for a single one")
    if names is not None and (isinstance(names, str) or len(names) != len(tokenizers)):
        raise ValueError(f"names must give one name per tokenizer ({len(tokenizers)}), got {names!r}")
    lang = get_language(language)
    limits = _thresholds(thresholds)
    _check_options(normalization, batch_size, max_batch_chars, 5)
    toks = [_Tok.load(t, None if names is None else names[i]) for i, t in enumerate(tokenizers)]
    accs = [_Accumulator(t, lang, 5) for t in toks]
    for start, batch in _batches(texts, normalization, batch_size, max_batch_chars, progress, "texts"):
        for acc in accs:
            acc.update(batch, start)
    parities, n_pairs = _parity(toks, parallel, normalization, batch_size)
    reports = [acc.report(limits, normalization, p, n_pairs) for acc, p in zip(accs, parities, strict=True)]
    seen: dict[str, int] = {}
    rows = []
    for rep in reports:
        label = rep.tokenizer_name
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # two tokenizers with the same name: keep rows distinguishable
            label = f"{label} #{seen[label]}"
        counted = {c: v for c, v in rep.letter_coverage.items() if v["count"]}
        low = limits.min_letter_whole_share
        row = {
            "tokenizer": label, "vocab_size": rep.vocab_size, "fertility": rep.fertility,
            "continued_word_rate": rep.continued_word_rate, "chars_per_token": rep.chars_per_token,
            "bytes_per_token": rep.bytes_per_token, "unk_rate": rep.unk_rate,
            "byte_fallback_rate": rep.byte_fallback_rate, "roundtrip_ok": rep.roundtrip_ok,
            "min_letter_whole_share": min((v["whole_share"] for v in counted.values()), default=None),
            "letters_not_whole": "".join(c for c, v in counted.items()
                                         if low is not None and v["whole_share"] < low),
        }
        if rep.parity is not None:
            row["parity"] = rep.parity
        row["n_warnings"] = len(rep.warnings)
        rows.append(row)
    return TokenizerComparison(rows, reports)


# --------------------------------------------------------------------------------------------- helpers
def _thresholds(value: Any) -> DiagnosticThresholds:
    if value is None:
        return DiagnosticThresholds()
    if isinstance(value, DiagnosticThresholds):
        return value
    if isinstance(value, Mapping):
        return DiagnosticThresholds.from_dict(value)
    raise ValueError(f"thresholds must be a DiagnosticThresholds, a dict or None, got {type(value).__name__}")


def _check_options(normalization: Any, batch_size: Any, max_batch_chars: Any, max_examples: Any) -> None:
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of {_NORMALIZATIONS}")
    for label, value in (("batch_size", batch_size), ("max_batch_chars", max_batch_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise ValueError(f"max_examples must be an int >= 0, got {max_examples!r}")


def _normalize(text: Any, normalization: str | None, where: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{where} must hold strings, got {type(text).__name__}: {text!r:.60}")
    if normalization and not unicodedata.is_normalized(normalization, text):
        return unicodedata.normalize(normalization, text)
    return text


def _batches(texts: Iterable[str], normalization: str | None, batch_size: int, max_chars: int,
             progress: bool | None, what: str) -> Iterator[tuple[int, list[str]]]:
    """Yields (index of the first text, batch) with at most batch_size texts and ~max_chars characters."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{what} must be an iterable of strings (documents), not one {type(texts).__name__}; "
                         "wrap a single text in a list: [text]")
    from tqdm.auto import tqdm

    total = len(texts) if isinstance(texts, Sized) else None
    bar = tqdm(total=total, unit="text", desc="diagnosing tokenizer",
               disable=None if progress is None else not progress)
    start, batch, chars = 0, [], 0
    try:
        for text in texts:
            text = _normalize(text, normalization, what)
            batch.append(text)
            chars += len(text)
            if len(batch) >= batch_size or chars >= max_chars:
                yield start, batch
                bar.update(len(batch))
                start, batch, chars = start + len(batch), [], 0
        if batch:
            yield start, batch
            bar.update(len(batch))
    finally:
        bar.close()


@functools.lru_cache(maxsize=1)
def _whitespace_table() -> np.ndarray:
    """Boolean look-up by code point: True for the characters str.split() splits on (all are < U+3001)."""
    table = np.zeros(0x3002, dtype=bool)  # the last slot stands for every code point above U+3000
    for cp in range(0x3001):
        if chr(cp).isspace():
            table[cp] = True
    return table


class _Tok:
    """A fast tokenizer's Rust backend plus the per-vocabulary facts the diagnostics look up by id."""

    def __init__(self, backend: Any, name: str):
        self.backend = backend
        self.name = name
        vocab = backend.get_vocab(with_added_tokens=True)
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        size = max(vocab.values(), default=-1) + 1
        ids = sorted(vocab.values())
        pieces = [""] * size
        for piece, i in vocab.items():
            pieces[i] = piece
        decoded = [""] * size
        for i, text in zip(ids, backend.decode_batch([[i] for i in ids], skip_special_tokens=False), strict=True):
            decoded[i] = text
        self.special = np.zeros(size, dtype=bool)
        for i, added in backend.get_added_tokens_decoder().items():
            if added.special and i < size:
                self.special[i] = True
        # A byte piece: a SentencePiece <0xNN> token, or a token whose own bytes are not whole UTF-8
        # characters (decoding it alone gives U+FFFD, the replacement character, which its text lacks).
        self.byte_piece = np.fromiter(
            (bool(_BYTE_TOKEN.fullmatch(p)) or ("\ufffd" in d and "\ufffd" not in p)
             for p, d in zip(pieces, decoded, strict=True)), dtype=bool, count=size)
        self.text_lower = [unicodedata.normalize("NFC", d).lower() for d in decoded]
        self.unk_id = self._unk_id()

    def _unk_id(self) -> int | None:
        # The *model's* unknown token: GPT-2 style tokenizers often set unk_token = eos in their config,
        # but their byte-level BPE can never produce it, so the config's unk_token_id would be wrong here.
        model = json.loads(self.backend.to_str()).get("model", {})
        if model.get("unk_token") is not None:
            return self.backend.token_to_id(model["unk_token"])
        if model.get("unk_id") is not None:  # Unigram
            return int(model["unk_id"])
        return None

    @classmethod
    def load(cls, obj: Any, name: str | None) -> _Tok:
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - tokenizers is a dependency
            Tokenizer = ()  # noqa: N806
        if isinstance(obj, (str, os.PathLike)):
            from transformers import AutoTokenizer

            label = str(obj)
            obj = AutoTokenizer.from_pretrained(label)
            name = name or label
        if isinstance(obj, Tokenizer):
            backend = obj
        elif getattr(obj, "backend_tokenizer", None) is not None:
            backend = obj.backend_tokenizer
            name = name or getattr(obj, "name_or_path", "") or ""
        else:
            raise ValueError(
                f"diagnose_tokenizer needs a fast (Rust) tokenizer for character offsets, got "
                f"{type(obj).__name__}; load it with AutoTokenizer.from_pretrained(path, use_fast=True), "
                "or pass a tokenizers.Tokenizer")
        if backend.truncation is not None or backend.padding is not None:
            # Work on a copy without truncation/padding: diagnostics must see every token, and the
            # caller's tokenizer must stay as it was.
            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        return cls(backend, name or type(obj).__name__)


class _Accumulator:
    """Running sums of the diagnostics for one tokenizer; ``update`` takes a batch, ``report`` finishes."""

    def __init__(self, tok: _Tok, language: LanguageProfile, max_examples: int):
        self.tok = tok
        self.language = language
        self.max_examples = max_examples
        self.letters = list(language.special_letters)
        lut_size = max((ord(c) for c in language.special_letters_all_cases), default=-1) + 2
        self.letter_lut = np.full(lut_size, -1, dtype=np.int64)  # code point -> letter index, -1: none
        for j, c in enumerate(self.letters):
            for form in {c, c.upper(), c.title()}:
                if len(form) == 1:
                    self.letter_lut[ord(form)] = j
        contains = np.zeros((len(tok.text_lower), len(self.letters)), dtype=bool)
        for j, c in enumerate(self.letters):
            contains[:, j] = np.fromiter((c in t for t in tok.text_lower), dtype=bool, count=len(tok.text_lower))
        self.contains = contains
        self.in_vocab = (contains & ~tok.special[:, None]).any(axis=0)
        self.n_texts = self.n_words = self.n_tokens = self.n_chars = self.n_bytes = 0
        self.word_tokens = self.continued = self.n_unk = self.n_byte = self.failures = 0
        self.letter_count = np.zeros(len(self.letters), dtype=np.int64)
        self.letter_whole = np.zeros(len(self.letters), dtype=np.int64)
        self.mismatches: list[dict[str, Any]] = []

    def update(self, batch: list[str], start: int) -> None:
        enc = self.tok.backend.encode_batch(batch, add_special_tokens=False)
        id_lists = [e.ids for e in enc]
        lens = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(batch))
        total = int(lens.sum())
        ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=total)
        offsets = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in enc)),
                              dtype=np.int64, count=2 * total).reshape(total, 2)
        # One string for the batch, texts joined by "\n" (whitespace, so no word crosses a text boundary);
        # token offsets are shifted to positions in it.
        joined = "\n".join(batch)
        text_lens = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        text_starts = np.concatenate(([0], np.cumsum(text_lens + 1)[:-1]))
        shift = np.repeat(text_starts, lens)
        s, e = offsets[:, 0] + shift, offsets[:, 1] + shift
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
        n = cp.size

        self.n_texts += len(batch)
        self.n_tokens += total
        self.n_chars += int(text_lens.sum())
        self.n_bytes += len(joined.encode("utf-8")) - (len(batch) - 1)
        self.n_byte += int(self.tok.byte_piece[ids].sum())
        if self.tok.unk_id is not None:
            self.n_unk += int((ids == self.tok.unk_id).sum())

        # Words: maximal runs of non-whitespace characters; wid = word index of each character.
        ws_table = _whitespace_table()
        nonws = ~ws_table[np.minimum(cp, ws_table.size - 1)]
        word_start = nonws.copy()
        word_start[1:] &= ~nonws[:-1]
        wid = np.cumsum(word_start) - 1
        n_words = int(wid[-1] + 1) if n else 0
        self.n_words += n_words
        span = e > s  # tokens with an empty span (specials) cover no character
        sv, ev, iv = s[span], e[span], ids[span]
        if n_words and sv.size:
            pos = np.arange(n)
            next_nonws = np.minimum.accumulate(np.where(nonws, pos, n)[::-1])[::-1]
            prev_nonws = np.maximum.accumulate(np.where(nonws, pos, -1))
            first, last = next_nonws[sv], prev_nonws[ev - 1]
            inside = first <= last  # the token holds a non-whitespace character
            w_first, w_last = wid[first[inside]], wid[last[inside]]
            # tokens per word: +1 on every word from w_first to w_last (difference array)
            per_word = np.cumsum(np.bincount(w_first, minlength=n_words + 1)
                                 - np.bincount(w_last + 1, minlength=n_words + 1))[:n_words]
            self.word_tokens += int(per_word.sum())
            self.continued += int((per_word >= 2).sum())

        if self.letters:
            lut = self.letter_lut
            letter = lut[np.minimum(cp, lut.size - 1)]
            where = np.flatnonzero(letter >= 0)
            if where.size:
                which = letter[where]
                self.letter_count += np.bincount(which, minlength=len(self.letters))
                cover = np.cumsum(np.bincount(sv, minlength=n + 1) - np.bincount(ev, minlength=n + 1))[:n]
                if sv.size > 1 and not (sv[1:] >= sv[:-1]).all():
                    order = np.argsort(sv, kind="stable")
                    sv, ev, iv = sv[order], ev[order], iv[order]
                k = np.searchsorted(sv, where, side="right") - 1
                one = (cover[where] == 1) & (k >= 0)
                k, at, which1 = k[one], where[one], which[one]
                whole = (ev[k] > at) & self.contains[iv[k], which1]
                self.letter_whole += np.bincount(which1[whole], minlength=len(self.letters))

        decoded = self.tok.backend.decode_batch(id_lists, skip_special_tokens=False)
        for i, (text, back) in enumerate(zip(batch, decoded, strict=True)):
            if text != back:
                self.failures += 1
                if len(self.mismatches) < self.max_examples:
                    self.mismatches.append(_mismatch(start + i, text, back))

    def report(self, limits: DiagnosticThresholds, normalization: str | None,
               parity: float | dict[str, float] | None, n_pairs: int | dict[str, int] | None) -> TokenizerReport:
        if self.n_words == 0:
            raise ValueError(
                f"the texts given to diagnose tokenizer {self.tok.name!r} hold no words ({self.n_texts} texts, "
                "all empty or whitespace); pass documents of the language")
        coverage = {
            c: {"count": int(self.letter_count[j]),
                "whole_share": float(self.letter_whole[j] / self.letter_count[j]) if self.letter_count[j] else None,
                "in_vocab": bool(self.in_vocab[j])}
            for j, c in enumerate(self.letters)
        }
        tokens = max(self.n_tokens, 1)
        rep = TokenizerReport(
            tokenizer_name=self.tok.name, language=self.language.code, vocab_size=self.tok.vocab_size,
            n_texts=self.n_texts, n_words=self.n_words, n_tokens=self.n_tokens, n_chars=self.n_chars,
            n_bytes=self.n_bytes, fertility=self.word_tokens / self.n_words,
            continued_word_rate=self.continued / self.n_words, chars_per_token=self.n_chars / tokens,
            bytes_per_token=self.n_bytes / tokens, unk_rate=self.n_unk / tokens,
            byte_fallback_rate=self.n_byte / tokens, n_unk_tokens=self.n_unk, n_byte_fallback_tokens=self.n_byte,
            roundtrip_ok=self.failures == 0, n_roundtrip_failures=self.failures,
            roundtrip_mismatches=list(self.mismatches), letter_coverage=coverage, thresholds=limits.to_dict(),
            warnings=[], normalization=normalization, parity=parity, n_parallel_pairs=n_pairs,
        )
        rep.warnings = _warnings(rep, limits, self.language)
        return rep


def _mismatch(index: int, text: str, back: str, context: int = 20) -> dict[str, Any]:
    pos = next((i for i, (a, b) in enumerate(zip(text, back, strict=False)) if a != b), min(len(text), len(back)))
    lo = max(pos - context, 0)
    return {"index": index, "position": pos, "original": text[lo:pos + context],
            "decoded": back[lo:pos + context]}


def _parity(toks: list[_Tok], parallel: Any, normalization: str | None, batch_size: int
            ) -> tuple[list[Any], Any]:
    """Per tokenizer: Σ target tokens / Σ reference tokens (a float, or a dict for a dict of pair lists)."""
    if parallel is None:
        return [None] * len(toks), None
    if isinstance(parallel, Mapping):
        if not parallel:
            raise ValueError("parallel is an empty dict; give {reference_name: [(target, reference), ...]}")
        per = {label: _parity(toks, pairs, normalization, batch_size) for label, pairs in parallel.items()}
        return ([{label: per[label][0][i] for label in per} for i in range(len(toks))],
                {label: per[label][1] for label in per})
    if isinstance(parallel, (str, bytes)):
        raise ValueError("parallel must be a list of (target_sentence, reference_sentence) pairs, got a string")
    sums = np.zeros((len(toks), 2), dtype=np.int64)
    n_pairs = 0
    iter_pairs = iter(parallel)
    for chunk in iter(lambda: list(itertools.islice(iter_pairs, batch_size)), []):
        targets, refs = [], []
        for k, pair in enumerate(chunk):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"parallel[{n_pairs + k}] must be a (target_sentence, reference_sentence) pair, "
                                 f"got {pair!r:.80}")
            targets.append(_normalize(pair[0], normalization, "parallel pairs"))
            refs.append(_normalize(pair[1], normalization, "parallel pairs"))
        n_pairs += len(chunk)
        for t, tok in enumerate(toks):
            for col, side in enumerate((targets, refs)):
                sums[t, col] += sum(len(x) for x in tok.backend.encode_batch(side, add_special_tokens=False))
    if n_pairs == 0 or (sums[:, 1] == 0).any():
        raise ValueError(f"parity needs parallel pairs whose reference sentences are not empty, got {n_pairs} pairs")
    return [float(a / b) for a, b in sums], n_pairs


def _warnings(rep: TokenizerReport, limits: DiagnosticThresholds, lang: LanguageProfile) -> list[str]:
    out = []
    risk = f"this tokenizer is a risk for {lang.name}"
    if limits.max_byte_fallback_rate is not None and rep.byte_fallback_rate > limits.max_byte_fallback_rate:
        out.append(
            f"byte_fallback_rate is {rep.byte_fallback_rate:.1%} of tokens, above the threshold of "
            f"{limits.max_byte_fallback_rate:.1%}: {rep.n_byte_fallback_tokens} tokens are byte pieces, not whole "
            f"characters, so the model has to learn {lang.name} spelling byte by byte and every text costs more "
            f"tokens; {risk} (consider a tokenizer or vocabulary extension with {lang.name} tokens).")
    if limits.max_fertility is not None and rep.fertility > limits.max_fertility:
        out.append(
            f"fertility is {rep.fertility:.2f} tokens per word, above the threshold of {limits.max_fertility:g}: "
            f"{lang.name} words are cut into many pieces, so a training step and the context window hold fewer "
            f"words and per-token scores do not compare with other tokenizers; {risk}.")
    if limits.max_unk_rate is not None and rep.unk_rate > limits.max_unk_rate:
        out.append(
            f"unk_rate is {rep.unk_rate:.2%} of tokens, above the threshold of {limits.max_unk_rate:.2%}: text "
            f"mapped to the unknown token is lost, so the model can neither learn nor generate it; {risk}.")
    if limits.max_roundtrip_failures is not None and rep.n_roundtrip_failures > limits.max_roundtrip_failures:
        m = rep.roundtrip_mismatches[0] if rep.roundtrip_mismatches else None
        example = (f" (e.g. text {m['index']} at character {m['position']}: {m['original']!r} decodes as "
                   f"{m['decoded']!r})" if m else "")
        out.append(
            f"roundtrip failed: decode(encode(text)) != text for {rep.n_roundtrip_failures} of {rep.n_texts} texts, "
            f"above the threshold of {limits.max_roundtrip_failures} failures{example}; the tokenizer loses "
            "information (lower-casing, stripped accents, a lossy normalizer or unknown tokens), so a model "
            f"trained with it can never write the original text; {risk}.")
    low = limits.min_letter_whole_share
    if low is not None:
        bad = {c: v for c, v in rep.letter_coverage.items() if v["count"] and v["whole_share"] < low}
        if bad:
            detail = ", ".join(f"{c} {v['whole_share']:.2f}" + ("" if v["in_vocab"] else " (in no token)")
                               for c, v in bad.items())
            out.append(
                f"letter_coverage: special letters of {lang.name} stay inside one token holding the whole "
                f"character in less than {low:.0%} of their occurrences (whole_share: {detail}); they are split "
                f"into byte pieces or unknown tokens, so the model sees no unit for these {lang.name} sounds; "
                f"{risk}.")
    if limits.max_parity is not None and rep.parity is not None:
        parities = rep.parity if isinstance(rep.parity, dict) else {"the reference language": rep.parity}
        for ref, p in parities.items():
            if p > limits.max_parity:
                out.append(
                    f"parity vs {ref} is {p:.2f}, above the threshold of {limits.max_parity:g}: the same content "
                    f"takes {p:.2f} times as many tokens in {lang.name}, so training and generation cost {p:.2f} "
                    f"times as much and the context window holds {1 / p:.0%} as much {lang.name} text; {risk}.")
    return out

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
  and ``in_vocab`` (some non-special vocabulary token decodes to text containing the letter); ``forms``
  gives the same three numbers per written form (``"ә"``, ``"Ә"``), where ``in_vocab`` is case-sensitive:
  many tokenizers have the lower-case letter and fall back to bytes for the capital.
- **roundtrip_ok**: ``decode(encode(text)) == text`` for every text (decoding with the tokenizer's own
  decoder, special tokens kept), and, for a text that encodes to special tokens, also with
  ``skip_special_tokens=True`` (less the special tokens the text spells literally), so a byte piece or
  letter registered as a special token is a failure; the first mismatches are kept with their position.
- **parity** = Σ tokens of target sentences / Σ tokens of reference sentences over parallel pairs
  (Petrov et al. 2023, "Language model tokenizers introduce unfairness between languages").

Texts are NFC-normalised first (``normalization="NFC"``), as :func:`lowres_adapt.load_corpus` does,
so a letter typed as base letter + combining mark counts as the letter. Special tokens are not added.
Texts stream through in batches (one batched Rust encode call each), so memory is bounded by the batch,
not the corpus. Where a token's pieces spell the text by concatenation (byte-level BPE: GPT-2, Llama 3,
Qwen; SentencePiece-style BPE with byte fallback: Llama 2, Mistral), token spans come from the bytes each
piece spells, which must be the text's own; otherwise from the tokenizer's offsets. Both give the same
numbers (tested); the first is faster.

Example::

    >>> import lowres_adapt as la
    >>> tok = la.train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300)
    >>> report = la.diagnose_tokenizer(tok, ["һаумыһығыҙ дуҫтар"], progress=False)
    >>> report.letter_coverage["ҙ"]["whole_share"], report.byte_fallback_rate > 0.5
    (0.0, True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..languages import BASHKIR, LanguageProfile, get_language
from ._counts import DiagnosticCounts, TokenizerFacts, iter_batches, parity
from .loading import MIN_VOCAB_SIZE

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
            lines += ["", "| letter | count | whole share | in vocabulary | by form: count, whole share, in vocabulary |",
                      "| --- | --- | --- | --- | --- |"]
            for c, v in self.letter_coverage.items():
                forms = "; ".join(f"{f}: {x['count']}, {_fmt(x['whole_share'])}, {x['in_vocab']}"
                                  for f, x in v.get("forms", {}).items())
                lines.append(f"| {c} | {v['count']} | {_fmt(v['whole_share'])} | {v['in_vocab']} | {forms} |")
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
        >>> b = la.train_tokenizer(["a cat sat"] * 20, vocab_size=260, kind="wordpiece")  # 11 entries
        >>> table = la.compare_tokenizers([a, b], ["a cat"], language="en", names=["bpe", "wp"], progress=False,
        ...                               min_vocab_size=0)
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
    min_vocab_size: int = MIN_VOCAB_SIZE,
) -> TokenizerReport:
    """Returns a :class:`TokenizerReport` of how ``tokenizer_or_path`` cuts ``texts`` of ``language``.

    ``tokenizer_or_path``: a fast ``transformers`` tokenizer, a ``tokenizers.Tokenizer``, a folder / hub
    id for ``AutoTokenizer.from_pretrained``, or a tokenizer file (``tokenizer.json``, SentencePiece
    ``.model``, ``.tiktoken``, tekken ``.json``) for :func:`lowres_adapt.load_tokenizer`. ``texts``: any iterable of strings (a generator streams; a
    batch holds at most ``batch_size`` texts and about ``max_batch_chars`` characters). ``parallel``:
    ``[(target_sentence, reference_sentence), ...]`` gives ``parity`` (a float), or
    ``{"ru": pairs, "en": pairs}`` gives one parity per reference (a dict). ``progress``: a tqdm bar
    (``None``: only on a terminal). The metric definitions are in the module docstring.

    A tokenizer that cannot be real is refused with a ``ValueError`` naming the problem and the fix: a
    vocabulary of fewer than ``min_vocab_size`` entries (0 turns the check off, for deliberately tiny
    tokenizers), or no tokens at all for texts that hold words (both are what a published tokenizer file
    loaded the wrong way gives; :func:`lowres_adapt.load_tokenizer` loads it right).

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
    _check_options(normalization, batch_size, max_batch_chars, max_examples, min_vocab_size)
    tok = TokenizerFacts.load(tokenizer_or_path, name, min_vocab_size)
    counter = DiagnosticCounts(tok, lang, max_examples)
    for start, batch in iter_batches(texts, normalization, batch_size, max_batch_chars, progress):
        counter.update(batch, start)
    parities, n_pairs = parity([tok], parallel, normalization, batch_size)
    return _report(counter, lang, limits, normalization, parities[0], n_pairs)


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
    min_vocab_size: int = MIN_VOCAB_SIZE,
) -> TokenizerComparison:
    """Returns a :class:`TokenizerComparison` (list of dicts, one row per tokenizer, ``.to_markdown()``).

    Texts are read once (a generator works) and every batch goes to every tokenizer. Names come from
    ``names`` or each tokenizer's ``name_or_path``. Each row holds the headline metrics, the smallest
    special-letter ``whole_share``, the letters below the threshold, ``parity`` when ``parallel`` is given,
    and the number of warnings; ``table.reports[i]`` is tokenizer i's full :class:`TokenizerReport`.
    Tokenizers that cannot be real are refused as in :func:`diagnose_tokenizer` (``min_vocab_size``).

    Example::

        >>> import lowres_adapt as la
        >>> en = ["the cat sat on the mat"] * 20
        >>> ba = ["ҡар яуа, ҡыш етте"] * 20
        >>> table = la.compare_tokenizers([la.train_tokenizer(en, 300), la.train_tokenizer(ba, 300)],
        ...                               ba[:2], names=["en-bpe", "ba-bpe"], progress=False)
        >>> table[0]["fertility"] > table[1]["fertility"]
        True
        >>> print(table.to_markdown().splitlines()[0][:38])
        | tokenizer | vocab_size | fertility |
    """
    if isinstance(tokenizers, (str, os.PathLike)) or not isinstance(tokenizers, Sequence) or not tokenizers:
        raise ValueError("compare_tokenizers needs a non-empty list of tokenizers (or paths), "
                         f"got {type(tokenizers).__name__}; use diagnose_tokenizer for a single one")
    if names is not None and (isinstance(names, str) or len(names) != len(tokenizers)):
        raise ValueError(f"names must give one name per tokenizer ({len(tokenizers)}), got {names!r}")
    lang = get_language(language)
    limits = _thresholds(thresholds)
    _check_options(normalization, batch_size, max_batch_chars, 5, min_vocab_size)
    toks = [TokenizerFacts.load(t, None if names is None else names[i], min_vocab_size)
            for i, t in enumerate(tokenizers)]
    counters = [DiagnosticCounts(t, lang, 5) for t in toks]
    for start, batch in iter_batches(texts, normalization, batch_size, max_batch_chars, progress):
        for counter in counters:
            counter.update(batch, start)
    parities, n_pairs = parity(toks, parallel, normalization, batch_size)
    reports = [_report(c, lang, limits, normalization, p, n_pairs) for c, p in zip(counters, parities, strict=True)]
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


def _check_options(normalization: Any, batch_size: Any, max_batch_chars: Any, max_examples: Any,
                   min_vocab_size: Any = 0) -> None:
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of {_NORMALIZATIONS}")
    for label, value in (("batch_size", batch_size), ("max_batch_chars", max_batch_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise ValueError(f"max_examples must be an int >= 0, got {max_examples!r}")
    if isinstance(min_vocab_size, bool) or not isinstance(min_vocab_size, int) or min_vocab_size < 0:
        raise ValueError(f"min_vocab_size must be an int >= 0, got {min_vocab_size!r}")


def _report(c: DiagnosticCounts, lang: LanguageProfile, limits: DiagnosticThresholds, normalization: str | None,
            parity: Any, n_pairs: Any) -> TokenizerReport:
    if c.n_words == 0:
        raise ValueError(
            f"the texts given to diagnose tokenizer {c.tok.name!r} hold no words ({c.n_texts} texts, all empty "
            "or whitespace); pass documents of the language")
    tokens = max(c.n_tokens, 1)
    rep = TokenizerReport(
        tokenizer_name=c.tok.name, language=lang.code, vocab_size=c.tok.vocab_size, n_texts=c.n_texts,
        n_words=c.n_words, n_tokens=c.n_tokens, n_chars=c.n_chars, n_bytes=c.n_bytes,
        fertility=c.word_tokens / c.n_words, continued_word_rate=c.continued / c.n_words,
        chars_per_token=c.n_chars / tokens, bytes_per_token=c.n_bytes / tokens, unk_rate=c.n_unk / tokens,
        byte_fallback_rate=c.n_byte / tokens, n_unk_tokens=c.n_unk, n_byte_fallback_tokens=c.n_byte,
        roundtrip_ok=c.failures == 0, n_roundtrip_failures=c.failures, roundtrip_mismatches=list(c.mismatches),
        letter_coverage=c.letter_coverage(), thresholds=limits.to_dict(), warnings=[],
        normalization=normalization, parity=parity, n_parallel_pairs=n_pairs,
    )
    rep.warnings = _warnings(rep, limits, lang)
    return rep


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
        skipped = [m for m in rep.roundtrip_mismatches if m.get("skip_special_tokens")]
        special = (f"; {len(skipped)} of the examples decode without letters once special tokens are skipped "
                   "(decode(ids, skip_special_tokens=True), as generated text is decoded): tokens that stand for "
                   "ordinary text (byte pieces, letters) are registered as special tokens, so fix the "
                   "tokenizer's added_tokens (special: false)" if skipped else "")
        out.append(
            f"roundtrip failed: decode(encode(text)) != text for {rep.n_roundtrip_failures} of {rep.n_texts} texts, "
            f"above the threshold of {limits.max_roundtrip_failures} failures{example}{special}; the tokenizer "
            "loses information (lower-casing, stripped accents, a lossy normalizer, unknown tokens or special "
            f"tokens standing for text), so a model trained with it can never write the original text; {risk}.")
    low = limits.min_letter_whole_share
    if low is not None:
        bad = {c: v for c, v in rep.letter_coverage.items() if v["count"] and v["whole_share"] < low}
        if bad:
            detail = ", ".join(f"{c} {v['whole_share']:.2f}" + ("" if v["in_vocab"] else " (in no token)")
                               for c, v in bad.items())
            # with no unknown tokens, a letter that is not whole is spelled by its UTF-8 bytes: byte fallback
            how = ("they fall back to bytes (byte fallback: each is spelled by byte pieces of its UTF-8 encoding, "
                   "even where the overall byte-fallback rate is low)" if rep.n_unk_tokens == 0
                   else "they are split into byte pieces or unknown tokens")
            out.append(
                f"letter_coverage: special letters of {lang.name} stay inside one token holding the whole "
                f"character in less than {low:.0%} of their occurrences (whole_share: {detail}); {how}, so the "
                f"model sees no unit for these {lang.name} sounds; {risk}.")
    if limits.max_parity is not None and rep.parity is not None:
        parities = rep.parity if isinstance(rep.parity, dict) else {"the reference language": rep.parity}
        for ref, p in parities.items():
            if p > limits.max_parity:
                out.append(
                    f"parity vs {ref} is {p:.2f}, above the threshold of {limits.max_parity:g}: the same content "
                    f"takes {p:.2f} times as many tokens in {lang.name}, so training and generation cost {p:.2f} "
                    f"times as much and the context window holds {1 / p:.0%} as much {lang.name} text; {risk}.")
    return out

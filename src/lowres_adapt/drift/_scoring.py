"""The arithmetic of a drift verdict: words' log-scores -> a segment's log-scores, and switch search.

A segment is scored word by word. Each word gets the backend's log-score plus the alphabet evidence for
every candidate language; the scores are moved so that the word's best language is at 0 and *capped*
at ``-cap`` nats below it; then the capped scores are summed over the words, each times its weight (1,
``name_weight`` for names and abbreviations, 0 for neutral tokens). The cap is what keeps a Bashkir
sentence with one Russian loanword ("реконструкция"), a Russian title in quotes or a string of Russian
surnames Bashkir: one word can move the verdict by at most ``cap`` nats, while a sentence that really is
Russian wins by about ``cap`` per word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..languages import LanguageProfile
from . import _langid
from ._text import Word


def capped_word_scores(scores: np.ndarray, cap: float) -> np.ndarray:
    """(n_words, n_languages) scores relative to each word's best language, clipped at ``-cap``.

    >>> capped_word_scores(np.array([[-1.0, -9.0, -2.0]]), cap=4.0).tolist()
    [[0.0, -4.0, -1.0]]
    """
    if not len(scores):
        return scores
    rel = scores - scores.max(axis=1, keepdims=True)
    return np.maximum(rel, -float(cap))


def sum_by_segment(values: np.ndarray, segment_of: np.ndarray, weights: np.ndarray, n_segments: int) -> np.ndarray:
    """(n_segments, n_languages): the weighted sum of the rows of ``values`` belonging to each segment.

    >>> sum_by_segment(np.array([[1.0, 0], [2, 1], [4, 4]]), np.array([0, 0, 1]), np.array([1, .5, 1]), 3).tolist()
    [[2.0, 0.5], [4.0, 4.0], [0.0, 0.0]]
    """
    out = np.zeros((n_segments, values.shape[1] if values.ndim == 2 else 0))
    if len(values):
        np.add.at(out, segment_of, values * weights[:, None])
    return out


def language_path(scores: np.ndarray, penalty: float) -> list[int]:
    """Returns the language index of each word that maximises the summed word scores minus ``penalty``
    per change of language between neighbouring words (Viterbi; on ties the path stays in its language).

    ``scores`` is (n_words, n_languages) log-scores.

    >>> language_path(np.array([[0.0, -5], [0, -5], [-9, 0], [-9, 0]]), penalty=4.0)
    [0, 0, 1, 1]
    >>> language_path(np.array([[0.0, -5], [-3, 0], [0, -5]]), penalty=4.0)  # a 3-nat gain is not worth 2 changes
    [0, 0, 0]
    """
    n_words, n_langs = scores.shape
    if not n_words:
        return []
    best = scores[0].astype(np.float64)
    back = np.zeros((n_words, n_langs), dtype=np.int64)
    stay = np.arange(n_langs)
    for w in range(1, n_words):
        j = int(best.argmax())
        switch = best[j] - penalty > best
        back[w] = np.where(switch, j, stay)
        best = np.where(switch, best[j] - penalty, best) + scores[w]
    path = [int(best.argmax())]
    for w in range(n_words - 1, 0, -1):
        path.append(int(back[w, path[-1]]))
    return path[::-1]


_NGRAM_CACHE: dict[tuple, _langid.NgramBackend] = {}


def _fitted_ngram(texts: dict[str, list[str]], orders: tuple[int, ...], smoothing: float) -> _langid.NgramBackend:
    """An n-gram backend fitted on ``texts``; reused when the same texts come again (e.g. the samples)."""
    key = (orders, smoothing, tuple((code, len(t), hash(tuple(t))) for code, t in texts.items()))
    if key not in _NGRAM_CACHE:
        if len(_NGRAM_CACHE) > 8:
            _NGRAM_CACHE.clear()
        _NGRAM_CACHE[key] = _langid.NgramBackend(orders, smoothing).fit(texts)
    return _NGRAM_CACHE[key]


@dataclass
class _Scored:
    """Scores of a batch of segments (see ``DriftDetector._score_segments``)."""

    total: np.ndarray  # (n_segments, n_languages) decision log-scores
    model: np.ndarray  # backend part, uncapped, weighted
    alphabet: np.ndarray  # alphabet part, uncapped, weighted
    letters: np.ndarray  # weighted letters of the scored words
    n_words: np.ndarray  # full-weight words
    words: list[list[Word]]  # scored words of each segment (weight > 0)
    word_rows: np.ndarray  # (n_words, n_languages) capped, weighted word scores
    segment_of: np.ndarray  # segment index of each row of word_rows


def _softmax(scores: np.ndarray) -> np.ndarray:
    if not len(scores):
        return scores
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _sample_texts(code: str, profile: LanguageProfile | None) -> list[str]:
    """Training text for ``code``: the profile's ``sample_text``, else the shipped sample, else []."""
    if profile is not None and profile.sample_documents():
        return profile.sample_documents()
    from ..data import sample_corpus

    try:
        return sample_corpus(code)
    except ValueError:
        return []

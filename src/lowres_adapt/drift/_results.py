"""What the drift detector reports: ``DriftAnalysis`` and the evidence behind each non-target verdict.

Public names are importable from ``lowres_adapt.drift`` (and the top level); this module only keeps the
result side of the detector apart from the scoring side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

UNDETERMINED = "und"  # label of segments too short (or too ambiguous) to score; excluded from shares


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
    ``explanations`` hold, for every segment labelled another language than the target, the evidence that
    decided it (see ``explain``).

    Example::

        >>> import lowres_adapt as la
        >>> a = la.DriftDetector("ba", backend="ngram").analyze(
        ...     "Беҙ бөгөн мәктәпкә барабыҙ. Потом мы пошли домой и долго говорили о погоде.")
        >>> e = a.explanations[0]
        >>> e["language"], e["log_odds"] > 10, "говорили" in [w["word"] for w in e["words"]]
        ('ru', True, True)
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
    explanations: list[dict[str, Any]] = field(default_factory=list)

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

    def explain(self) -> str:
        """Returns a few lines per non-target segment: its text, the verdict, the evidence, the words.

        ``log_odds`` is the decision value, log P(language) - log P(target) in nats after the per-word
        cap; ``model`` and ``alphabet`` split the uncapped evidence into the language-ID model's part
        (n-grams or fastText) and the alphabet's part (script, distinctive letters). Each word line gives
        the word's capped, weighted push towards the segment's language.

        Example::

            >>> import lowres_adapt as la
            >>> text = "Беҙ бөгөн мәктәпкә барабыҙ. Потом мы пошли домой и долго говорили о погоде."
            >>> print(la.DriftDetector("ba", backend="ngram").analyze(text).explain())  # doctest: +ELLIPSIS
            segment 2 [28:75] ru (confidence 1.000) vs ba: log-odds +...
              "Потом мы пошли домой и долго говорили о погоде."
              model (ngram) +... nats, alphabet +... nats; ... words scored
              ... (word) +...
            ...
        """
        if not self.explanations:
            return f"no segment left {self.target!r} ({self.status}, backend {self.backend})"
        lines = []
        for e in self.explanations:
            lines.append(f"segment {e['segment']} [{e['start']}:{e['end']}] {e['language']} (confidence "
                         f"{e['confidence']:.3f}) vs {self.target}: log-odds {e['log_odds']:+.1f} nats")
            lines.append(f"  \"{e['text']}\"")
            lines.append(f"  model ({self.backend}) {e['model']:+.1f} nats, alphabet {e['alphabet']:+.1f} nats; "
                         f"{e['n_words']} words scored")
            lines += [f"  {w['word']} ({w['kind']}) {w['log_odds']:+.2f}" for w in e["words"]]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The analysis as a JSON-friendly dict (tuples become lists)."""
        d = asdict(self)
        d["segments"] = [list(s) for s in self.segments]
        d["foreign_words"] = [list(w) for w in self.foreign_words]
        return d


def flagged_examples(per_text: list[dict[str, Any]], texts: list[str] | None = None, limit: int = 3,
                     max_chars: int = 200) -> list[dict[str, Any]]:
    """Returns up to ``limit`` drifted texts from ``evaluate()["per_text"]``, each with the segment that
    first left the target and its evidence, small enough to store with a study run.

    Example::

        >>> import lowres_adapt as la
        >>> texts = ["Бөгөн һауа торошо бик матур булды.", "Сегодня погода была очень хорошая и тёплая."]
        >>> s = la.DriftDetector("ba", backend="ngram").evaluate(texts)
        >>> [(x["index"], x["language"], x["text"][:7]) for x in flagged_examples(s["per_text"], texts)]
        [(1, 'ru', 'Сегодня')]
    """
    out = []
    for i, a in enumerate(per_text):
        if len(out) >= limit:
            break
        if not a.get("drifted") or not a.get("explanations"):
            continue
        e = a["explanations"][0]
        out.append({"index": i, "language": e["language"], "confidence": e["confidence"],
                    "log_odds": e["log_odds"], "model": e["model"], "alphabet": e["alphabet"],
                    "text": (texts[i] if texts is not None else e["text"])[:max_chars],
                    "segment": e["text"][:max_chars], "words": [w["word"] for w in e["words"]]})
    return out

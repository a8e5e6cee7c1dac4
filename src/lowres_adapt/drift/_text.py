"""How the drift detector cuts a text: segments (lines, sentences) and the words it weighs in each.

Clean text in a low-resource language is full of things that are not evidence of any language: numbers,
URLs and e-mail addresses, initials, Roman numerals, codes such as "В12" or "SBR003", people's names and
abbreviations (mostly Russian in form in Bashkir news: "Вадим ХӘБИРОВ.", "БДУ профессоры."). Scored as
words they make a Bashkir byline look Russian. ``segment_words`` therefore returns each word with a
*kind* and a *weight*:

- ``"neutral"`` (weight 0, not scored): inside a URL or e-mail address, joined to a digit, a single letter
  (an initial), or a Roman numeral;
- ``"name"`` (weight ``name_weight``, 0 when written in another script than the target's): a capitalised
  word that does not open the segment, or a word in capitals (an abbreviation or a surname) when the
  segment is not written all in capitals (a headline). A segment with no letter in the target's script
  is foreign text rather than names: its names keep ``name_weight``, and when it is in
  title case (most words of 4+ letters capitalised, as English headlines are) its words are plain words;
- ``"word"`` (weight 1): everything else.

Words written in two scripts ("командаhының", Latin h for һ, common in older Bashkir web text) are scored
with the Latin look-alike letters folded into the word's main script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._langid import script_of

_LINES = re.compile(r"[^\n\r]+")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”’)\]]*(?=\s|$)")
_LETTER_RUN = re.compile(r"[^\W\d_](?:[^\W\d_]|\u00ad)*")  # soft hyphens (U+00AD) stay inside a word
_URL = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+\.(?:ru|com|org|net|рф)\b", re.I)
_ROMAN = re.compile(r"[IVXLCDM]+")
# Latin letters that look like Cyrillic ones (and h for һ), folded in words written mostly in Cyrillic.
_TO_CYRILLIC = str.maketrans("aceopxyhkmtbABCEHKMOPTXY", "асеорхуһкмтвАВСЕНКМОРТХУ")
_TO_LATIN = str.maketrans("асеорхукмтАВСЕНКМОРТХУ", "aceopxykmtABCEHKMOPTXY")


@dataclass(frozen=True)
class Word:
    """One letter run of a segment: offsets into the text, the form that is scored, kind and weight."""

    start: int
    end: int
    form: str  # what the language-ID model sees (look-alike letters folded)
    kind: str  # "word", "name" or "neutral"
    weight: float


def segment_spans(text: str, split: str = "sentence") -> list[tuple[int, int]]:
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


def _fold(word: str) -> str:
    """``word`` with look-alike letters moved into its main script (only when it mixes scripts)."""
    scripts = [script_of(c) for c in word]
    cyr, lat = scripts.count("Cyrillic"), scripts.count("Latin")
    if not (cyr and lat):
        return word
    return word.translate(_TO_CYRILLIC) if cyr >= lat else word.translate(_TO_LATIN)


def _is_caps(word: str) -> bool:
    return len(word) >= 2 and word.isupper()


def segment_words(text: str, start: int, end: int, name_weight: float = 0.25, script: str | None = None
                  ) -> list[Word]:
    """The words of ``text[start:end]`` with their kind and weight (see the module docstring). A name
    written in another script than ``script`` (the target's: "Renault" in Bashkir text) weighs 0.

    >>> [(w.form, w.kind) for w in segment_words("Вадим ХӘБИРОВ, www.bashinform.ru, В12 III", 0, 41)]
    [('Вадим', 'word'), ('ХӘБИРОВ', 'name'), ('www', 'neutral'), ('bashinform', 'neutral'), ('ru', 'neutral'), ('В', 'neutral'), ('III', 'neutral')]
    """
    masked = [(m.start(), m.end()) for m in _URL.finditer(text, start, end)]
    runs = list(_LETTER_RUN.finditer(text, start, end))
    headline = all(_is_caps(m.group()) for m in runs)  # "ЧЕЧНЯ ПРЕЗИДЕНТЫНА ҠАРЫМТА"
    if script is not None and runs:
        if not any(script_of(c) == script for m in runs for c in m.group()):
            # A segment with no letter in the target's script is foreign text, not names inside target text: its
            # capitalised words weigh as names in that script would, and a title-case headline ("Twitter
            # Suspends Chinese Accounts ...") is read as ordinary words.
            script = None
            long_words = [m.group() for m in runs if len(m.group()) >= 4]
            headline = headline or (len(long_words) >= 3
                                    and sum(w[0].isupper() for w in long_words) >= 0.8 * len(long_words))
    out = []
    for i, m in enumerate(runs):
        a, b, word = m.start(), m.end(), m.group().replace("\u00ad", "")
        before = text[a - 1] if a > start else ""
        after = text[b] if b < end else ""
        kind = "word"
        if (len(word) < 2 or before.isdigit() or after.isdigit() or _ROMAN.fullmatch(word)
                or any(s <= a < e for s, e in masked)):
            kind = "neutral"
        elif not headline and (_is_caps(word) or (i > 0 and word[0].isupper())):
            kind = "name"
        weight = {"word": 1.0, "name": float(name_weight), "neutral": 0.0}[kind]
        if kind == "name" and script is not None and script_of(word[0]) != script:
            weight = 0.0
        out.append(Word(a, b, _fold(word), kind, weight))
    return out


_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def foreign_words(text: str, start: int, end: int, script: str, min_letters: int = 2) -> list[tuple[int, int, str]]:
    """(start, end, word) of words in ``text[start:end]`` written in another script than ``script``
    (URLs and e-mail addresses left out).

    >>> foreign_words("Беҙ Instagram һәм www.vk.com аша", 0, 31, "Cyrillic")
    [(4, 13, 'Instagram')]
    """
    masked = [(m.start(), m.end()) for m in _URL.finditer(text, start, end)]
    out = []
    for m in _WORD.finditer(text, start, end):
        word = m.group()
        if sum(c.isalpha() for c in word) < min_letters or any(s <= m.start() < e for s, e in masked):
            continue
        scripts = [script_of(c) for c in word if c.isalpha()]
        main = max(set(scripts), key=scripts.count)
        if main not in (script, "Other"):
            out.append((m.start(), m.end(), word))
    return out

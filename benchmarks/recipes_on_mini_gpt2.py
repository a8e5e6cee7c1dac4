"""Full fine-tuning, LoRA(r=8) and QLoRA(r=8) on a real pretrained base that never saw Bashkir.

Trains each recipe for the same number of steps on the shared Bashkir train split and reports the
held-out loss on the valid split next to the untouched base's (measured in the same process on the
same packed valid blocks), so the table in ``docs/results.md#recipes`` can be reproduced:

    nice -n 5 python benchmarks/recipes_on_mini_gpt2.py \\
        --model ../shared/models/mini-gpt2-ru --data ../shared/data/bashkir --out /tmp/recipes-mini

A tiny CPU smoke run (a minute):

    python benchmarks/recipes_on_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir --max-steps 5 --train-docs 50 --eval-docs 10 --out /tmp/smoke
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import lowres_adapt as la
from lowres_adapt._utils import library_versions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="pretrained base folder (e.g. ../shared/models/mini-gpt2-ru)")
    p.add_argument("--data", required=True, help="folder with corpus-train.jsonl and corpus-valid.jsonl")
    p.add_argument("--out", required=True, help="folder for the runs and results.json")
    p.add_argument("--recipes", default="full,lora,qlora", help="comma list of full, lora, qlora")
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train-docs", type=int, default=600, help="first N train documents (0: all)")
    p.add_argument("--eval-docs", type=int, default=20, help="first N valid documents (0: all)")
    p.add_argument("--lr-full", type=float, default=5e-4)
    p.add_argument("--lr-lora", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    data = Path(a.data)
    train = la.load_corpus(data / "corpus-train.jsonl")
    valid = la.load_corpus(data / "corpus-valid.jsonl")
    train = train[: a.train_docs] if a.train_docs else train
    valid = valid[: a.eval_docs] if a.eval_docs else valid
    out = Path(a.out)
    recipes = {"full": (la.FullFineTuning(), a.lr_full), "lora": (la.LoRA(r=8), a.lr_lora),
               "qlora": (la.QLoRA(r=8), a.lr_lora)}
    common = dict(max_steps=a.max_steps, block_size=a.block_size, batch_size=a.batch_size, seed=a.seed,
                  warmup_steps=0.05, logging_steps=10)
    rows, base_loss = [], None
    for key in a.recipes.split(","):
        recipe, lr = recipes[key]
        t0 = time.perf_counter()
        run = recipe.train(a.model, train, valid, output_dir=out / key, learning_rate=lr,
                           eval_before_training=True, **common)
        m = run.metrics
        if key != "qlora" and base_loss is None:
            base_loss = m["eval_loss_before"]  # the untouched full-precision base on the same blocks
        rows.append({"recipe": key, "learning_rate": lr, "eval_loss_before": m["eval_loss_before"],
                     "eval_loss": m["eval_loss"], "eval_perplexity": m["eval_perplexity"],
                     "trainable_params": m["trainable_params"], "total_params": m["total_params"],
                     "weight_bytes": m["weight_bytes"], "tokens_per_second": m["tokens_per_second"],
                     "train_tokens": m["train_tokens"], "packing_efficiency": m["packing_efficiency"],
                     "eval_blocks": m["eval_blocks"], "wall_seconds": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
    settings = {k: v for k, v in vars(a).items()}
    result = {"settings": settings, "base_eval_loss": base_loss, "runs": rows,
              "library_versions": library_versions()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nuntouched base valid loss: {base_loss:.4f} (ppl {math.exp(base_loss):.1f})" if base_loss else "")
    print("| recipe | lr | valid loss before | valid loss after | ppl after | trainable | weight MB | tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['learning_rate']:g} | {r['eval_loss_before']:.4f} | {r['eval_loss']:.4f} | "
              f"{r['eval_perplexity']:.1f} | {r['trainable_params']:,} | {r['weight_bytes'] / 1e6:.1f} | "
              f"{r['tokens_per_second']:.0f} |")


if __name__ == "__main__":
    main()

"""Evaluate a causal LM on a corpus split with ``PerplexityEvaluator`` and print the report as Markdown.

Used for the numbers in ``docs/results.md#perplexity-evaluator``. Paths are arguments; nothing is written into the
repository unless ``--out`` is given.

Commands::

    # the shared pretrained base on the shared Bashkir test split (about 10 minutes on 2 CPU cores)
    python benchmarks/evaluate_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-test.jsonl

    # the same, plus a strided evaluation (more context per token) compared with the disjoint one
    python benchmarks/evaluate_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-test.jsonl --compare-stride 128

    # a tiny CPU run on the shipped Bashkir sample with a tiny in-process model (seconds)
    python benchmarks/evaluate_mini_gpt2.py --tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lowres_adapt as la


def read_documents(path: str, text_field: str) -> tuple[list[str], list]:
    """Texts and ids: a .jsonl file's ``id`` field when present, else the document index."""
    if path.endswith(".jsonl"):
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = [row[text_field] for row in rows]
        return texts, [row.get("id", i) for i, row in enumerate(rows)]
    texts = la.load_corpus(path, text_field=text_field)
    return texts, list(range(len(texts)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (its tokenizer is loaded from the same place)")
    parser.add_argument("--data", help="corpus file (.jsonl / .txt) or folder, read with la.load_corpus")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--tiny", action="store_true", help="tiny in-process model on the shipped sample")
    parser.add_argument("--max-length", type=int, default=None, help="default: the model's context")
    parser.add_argument("--stride", type=int, default=None, help="default: disjoint windows (lm-eval)")
    parser.add_argument("--compare-stride", type=int, default=None,
                        help="also evaluate with this stride and print compare_results(disjoint, strided)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the full result (per-document records included) as JSON here")
    args = parser.parse_args(argv)

    if args.tiny:
        texts = la.sample_corpus("ba")
        ids = list(range(len(texts)))
        tokenizer = la.train_tokenizer(texts, vocab_size=500)
        model = la.build_tiny_model("gpt2", tokenizer, hidden_size=64, max_positions=128)
    elif args.model and args.data:
        texts, ids = read_documents(args.data, args.text_field)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    else:
        parser.error("give --model and --data, or --tiny")

    ev = la.PerplexityEvaluator(max_length=args.max_length, stride=args.stride, batch_size=args.batch_size,
                                bootstrap_samples=args.bootstrap_samples, seed=args.seed)
    start = time.perf_counter()
    res = ev.evaluate(model, tokenizer, texts, ids=ids)
    seconds = time.perf_counter() - start
    print(f"model: {res.model or 'tiny in-process gpt2'}   data: {args.data or 'shipped sample (ba)'}")
    shown = ("max_length", "stride", "batch_size", "bootstrap_samples", "seed")
    print(f"settings: {json.dumps({k: res.settings[k] for k in shown})}")
    print(f"documents fingerprint: {res.documents_fingerprint}   wall: {seconds:.1f} s "
          f"({res.n_tokens / seconds:,.0f} tokens/s)\n")
    print(res.to_markdown())
    print(f"\ntokens per word: {res.n_tokens / res.n_words:.3f}   bytes per token: {res.n_bytes / res.n_tokens:.3f}")

    out = {"result": res.to_dict(), "wall_seconds": seconds}
    if args.compare_stride is not None:
        strided_ev = la.PerplexityEvaluator(max_length=args.max_length, stride=args.compare_stride,
                                            batch_size=args.batch_size, bootstrap_samples=args.bootstrap_samples,
                                            seed=args.seed)
        strided = strided_ev.evaluate(model, tokenizer, texts, ids=ids)
        cmp = la.compare_results(res, strided)
        print(f"\nstride {args.compare_stride}: bits per byte {strided.bits_per_byte:.4f} "
              f"(disjoint {res.bits_per_byte:.4f})")
        print(f"compare_results(disjoint, strided): difference {cmp['difference']:+.4f} bits/byte, "
              f"{cmp['confidence_level']:.0%} CI {cmp['confidence_interval']}, Wilcoxon p = {cmp['p_value']:.3g}, "
              f"better: {cmp['better']}, strided better on {1 - cmp['a_better_share']:.0%} of documents")
        out["strided"] = strided.to_dict()
        out["comparison"] = cmp
    if args.out:
        from lowres_adapt._utils import atomic_write_json

        atomic_write_json(args.out, out)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

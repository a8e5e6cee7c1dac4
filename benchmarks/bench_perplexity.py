"""Throughput of ``PerplexityEvaluator`` against two baselines measured in the same process.

(a) raw: the model's batched forward pass over exactly the same windows, pre-tokenized and pre-padded,
    no loss: the ceiling for any evaluator (target: evaluator / raw >= 0.85);
(b) naive: a per-document, batch-size-1 loop (tokenize, then one forward pass and a loss per window).

All three score the same tokens; the benchmark checks that (a) and (b) agree with the evaluator on the
tokens scored and (b) on the total log-likelihood. Each measurement is repeated and the fastest run
is kept; the runs are interleaved so that load from other processes hits all three alike, and every
round's ratio is printed (on a shared CPU, ``--threads 1`` gives steadier numbers).

Commands::

    # tiny CPU run: a tiny model built in-process, on the shipped Bashkir sample (under a minute)
    python benchmarks/bench_perplexity.py

    # the shared pretrained base on 16 documents of the shared test split (docs/results.md#perplexity-evaluator)
    python benchmarks/bench_perplexity.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-test.jsonl --max-docs 16 --repeats 5 \\
        --out benchmarks/results/bench_perplexity.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

import lowres_adapt as la
from lowres_adapt.evaluation._windows import window_spans, window_tokens


def raw_batches(token_lists, prefix, max_length, batch_size):
    """The evaluator's windows as padded tensors, longest first, built before any timer starts."""
    spans = [(doc, s) for doc, toks in enumerate(token_lists) for s in window_spans(len(toks), max_length)]
    spans.sort(key=lambda item: item[1][0] - item[1][1])
    batches, n_scored = [], 0
    for first in range(0, len(spans), batch_size):
        chunk = spans[first : first + batch_size]
        width = chunk[0][1][1] - chunk[0][1][0]
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (doc, span) in enumerate(chunk):
            inputs, targets = window_tokens(token_lists[doc], prefix, span)
            ids[row, : len(inputs)] = torch.tensor(inputs)
            mask[row, : len(inputs)] = 1
            n_scored += len(targets)
        batches.append((ids, mask))
    return batches, n_scored


def run_raw(model, batches):
    with torch.inference_mode():
        for ids, mask in batches:
            model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # noqa: B018


def run_naive(model, tokenizer, texts, prefix, max_length):
    """Per document, batch size 1: the loop most people write first."""
    total, n = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
            for span in window_spans(len(tokens), max_length):
                inputs, targets = window_tokens(tokens, prefix, span)
                logits = model(input_ids=torch.tensor([inputs]), use_cache=False).logits[0, -len(targets):]
                total += float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(targets),
                                                                 reduction="sum"))
                n += len(targets)
    return total, n


def best_of(repeats, fns):
    """Fastest wall time of each function, runs interleaved (a, b, c, a, b, c, ...)."""
    runs = {name: [] for name in fns}
    outputs = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outputs[name] = fn()
            runs[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in runs.items()}, runs, outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: a tiny GPT-2 built in-process)")
    parser.add_argument("--data", help="corpus path for la.load_corpus (default: the shipped Bashkir sample)")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--max-docs", type=int, default=40)
    parser.add_argument("--max-length", type=int, default=None, help="default: the model's context")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", help="write the numbers as JSON here (e.g. benchmarks/results/...json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    texts = la.load_corpus(args.data, text_field=args.text_field) if args.data else la.sample_corpus("ba")
    texts = texts[: args.max_docs]
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model).eval()
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model_name = args.model
    else:  # roughly the shape of the shared mini-gpt2-ru: 4 layers, 256 wide, 256 positions
        tokenizer = la.train_tokenizer(texts, vocab_size=2000)
        model = la.build_tiny_model("gpt2", tokenizer, hidden_size=256, num_layers=4, num_heads=4,
                                    max_positions=256).eval()
        model_name = "tiny gpt2 (in-process, 4x256, vocab 2000)"

    ev = la.PerplexityEvaluator(max_length=args.max_length, batch_size=args.batch_size, progress=False)
    first = ev.evaluate(model, tokenizer, texts)  # warm-up, and the settings it resolved
    max_length, prefix = first.settings["max_length"], first.settings["prefix_token_id"]
    token_lists = tokenizer(texts, add_special_tokens=False)["input_ids"]
    batches, n_raw = raw_batches(token_lists, prefix, max_length, args.batch_size)

    times, runs, outputs = best_of(args.repeats, {
        "evaluator": lambda: ev.evaluate(model, tokenizer, texts),
        "raw_forward": lambda: run_raw(model, batches),
        "naive_bs1": lambda: run_naive(model, tokenizer, texts, prefix, max_length),
    })
    res = outputs["evaluator"]
    naive_nll, naive_tokens = outputs["naive_bs1"]
    if not (n_raw == naive_tokens == res.n_tokens):
        raise SystemExit(f"token counts differ: evaluator {res.n_tokens}, raw {n_raw}, naive {naive_tokens}")
    rel = abs(naive_nll - res.total_nll) / abs(res.total_nll)

    tps = {name: res.n_tokens / t for name, t in times.items()}
    report = {
        "model": model_name, "data": args.data or "shipped sample (ba)", "documents": len(texts),
        "tokens": res.n_tokens, "max_length": max_length, "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(), "repeats": args.repeats, "seconds": times,
        "all_seconds": runs,
        "tokens_per_second": tps,
        "evaluator_over_raw_forward": tps["evaluator"] / tps["raw_forward"],
        "evaluator_over_naive_bs1": tps["evaluator"] / tps["naive_bs1"],
        "naive_total_nll_rel_diff": rel, "machine": platform.machine(), "python": platform.python_version(),
        "versions": la._utils.library_versions(),
    }
    print(f"{model_name}: {len(texts)} documents, {res.n_tokens} tokens, max_length {max_length}, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, best of {args.repeats}")
    for name in ("evaluator", "raw_forward", "naive_bs1"):
        print(f"  {name:12s} {tps[name]:10,.0f} tokens/s   ({times[name]:.2f} s)")
    per_round = [r / e for r, e in zip(runs["raw_forward"], runs["evaluator"], strict=True)]
    report["evaluator_over_raw_forward_per_round"] = per_round
    report["evaluator_over_raw_forward_median_round"] = statistics.median(per_round)
    print(f"evaluator / raw batched forward: {report['evaluator_over_raw_forward']:.3f}   (target >= 0.85; "
          f"per round: {', '.join(f'{x:.3f}' for x in per_round)}; median {statistics.median(per_round):.3f})")
    print(f"evaluator / naive bs-1 loop:     {report['evaluator_over_naive_bs1']:.2f}x")
    print(f"naive loop total nll vs evaluator: relative difference {rel:.1e}")
    if args.out:
        from lowres_adapt._utils import atomic_write_json

        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

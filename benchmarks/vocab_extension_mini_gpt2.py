"""Vocabulary extension on a real pretrained base: fertility, and held-out bits per byte after equal training.

For ``docs/results.md#vocabulary-extension``. Loads a pretrained causal LM and a Bashkir corpus folder (paths are
arguments), extends the vocabulary with ``la.extend_vocabulary`` (tokens learnt from the training split),
then trains two copies with the same ``FullFineTuning`` budget (same steps, batch, block size, learning
rate, seed) -- the base vocabulary and the extended one -- and scores both with ``la.PerplexityEvaluator``
on held-out documents, in bits per byte (comparable across tokenizers), with a paired comparison
(``la.compare_results``). Prints a Markdown report; ``--out`` also writes every number as JSON.

"Same budget" means the same optimizer steps over the same number of token blocks: the extended
tokenizer packs more text into each block, so it sees more bytes; the report gives both.

Commands::

    # the shared base and corpus, the numbers in docs/results.md#vocabulary-extension (about 2 minutes on 2 idle CPU cores)
    python benchmarks/vocab_extension_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir --new-tokens 1000 --steps 60 --batch-size 4 \\
        --out benchmarks/results/vocab_extension_mini_gpt2.json

    # a tiny CPU run on the shipped Bashkir sample with a tiny in-process model (under a minute)
    python benchmarks/vocab_extension_mini_gpt2.py --tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lowres_adapt as la
from lowres_adapt._utils import library_versions


def _split(folder: Path, name: str, limit: int | None) -> list[str]:
    docs = la.load_corpus(str(folder / f"corpus-{name}.jsonl"))
    return docs[:limit] if limit else docs


def _fertility(tok, texts: list[str]) -> dict[str, float]:
    d = la.diagnose_tokenizer(tok, texts, language=la.BASHKIR).to_dict()
    return {k: d[k] for k in ("fertility", "continued_word_rate", "bytes_per_token", "byte_fallback_rate",
                              "roundtrip_ok")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pretrained model folder (its tokenizer is loaded from it)")
    parser.add_argument("--data", help="folder with corpus-train.jsonl and corpus-valid.jsonl")
    parser.add_argument("--tiny", action="store_true", help="tiny in-process model on the shipped sample")
    parser.add_argument("--new-tokens", type=int, default=1000)
    parser.add_argument("--vocab-docs", type=int, default=None, help="train documents the new tokens are "
                        "learnt from (default: all)")
    parser.add_argument("--train-docs", type=int, default=800, help="train documents packed for training")
    parser.add_argument("--eval-docs", type=int, default=60, help="held-out (valid) documents scored")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write every number as JSON here")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.tiny:
        docs = la.sample_corpus("ba")
        train, held_out, vocab_docs = docs[:-6], docs[-6:], docs[:-6]
        base_tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=400)
        base = la.build_tiny_model("gpt2", base_tok, hidden_size=32, num_heads=2, max_positions=128)
        args.block_size, args.steps, args.new_tokens = min(args.block_size, 64), min(args.steps, 10), 50
        args.batch_size = min(args.batch_size, 4)
    elif args.model and args.data:
        data = Path(args.data)
        train = _split(data, "train", args.train_docs)
        vocab_docs = _split(data, "train", args.vocab_docs)
        held_out = _split(data, "valid", args.eval_docs)
        base = AutoModelForCausalLM.from_pretrained(args.model)
        base_tok = AutoTokenizer.from_pretrained(args.model)
    else:
        parser.error("give --model and --data, or --tiny")

    t0 = time.perf_counter()
    ext_model, ext_tok, info = la.extend_vocabulary(base, base_tok, vocab_docs, max_new_tokens=args.new_tokens,
                                                    fertility_texts=held_out)
    extend_seconds = time.perf_counter() - t0
    fert = {"base": _fertility(base_tok, held_out), "extended": _fertility(ext_tok, held_out)}

    evaluator = la.PerplexityEvaluator(max_length=args.block_size, batch_size=8, bootstrap_samples=1000,
                                       seed=args.seed, progress=False)
    results, runs = {}, {}
    results["base, untrained"] = evaluator.evaluate(base, base_tok, held_out)
    results["extended, untrained"] = evaluator.evaluate(ext_model, ext_tok, held_out)
    settings = dict(max_steps=args.steps, batch_size=args.batch_size, block_size=args.block_size,
                    learning_rate=args.learning_rate, warmup_steps=0.1, seed=args.seed, logging_steps=10)
    for name, model, tok in (("base", base, base_tok), ("extended", ext_model, ext_tok)):
        with tempfile.TemporaryDirectory() as out:
            run = la.FullFineTuning().train(model, train, tokenizer=tok, output_dir=out, **settings)
        run.model.eval()
        runs[name] = run.metrics
        results[f"{name}, trained"] = evaluator.evaluate(run.model, tok, held_out)
    cmp_trained = la.compare_results(results["extended, trained"], results["base, trained"])
    cmp_init = la.compare_results(results["extended, untrained"], results["base, untrained"])

    bytes_per_token = {k: v["bytes_per_token"] for k, v in fert.items()}
    report = {
        "command": " ".join(sys.argv),
        "settings": {**settings, "new_tokens": args.new_tokens, "train_docs": len(train),
                     "vocab_docs": len(vocab_docs), "eval_docs": len(held_out)},
        "extension": {"added": len(info.added_tokens), "skipped": len(info.skipped),
                      "vocab": [info.old_vocab_size, info.new_vocab_size], "seconds": extend_seconds,
                      "fertility_before": info.fertility_before, "fertility_after": info.fertility_after,
                      "roundtrip_ok": info.roundtrip_ok, "top_tokens": info.added_texts[:20],
                      "merge_steps": info.counts.get("added_as_merge_steps", 0), "shortfall": info.shortfall},
        "diagnostics": fert,
        "bits_per_byte": {k: r.bits_per_byte for k, r in results.items()},
        "bits_per_byte_ci": {k: r.confidence_intervals.get("bits_per_byte") for k, r in results.items()},
        "train": {k: {"train_tokens": m["train_tokens"], "approx_train_bytes": m["train_tokens"] * bytes_per_token[k],
                      "train_loss": m["train_loss"], "train_seconds": m["train_seconds"]} for k, m in runs.items()},
        "extended_minus_base_trained": cmp_trained,
        "extended_minus_base_untrained": cmp_init,
        "library_versions": library_versions(),
    }
    print(_markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return 0


def _markdown(r: dict) -> str:
    e, d = r["extension"], r["diagnostics"]
    lines = [f"Added {e['added']} tokens (vocabulary {e['vocab'][0]} -> {e['vocab'][1]}, {e['skipped']} "
             f"candidates skipped, round-trip ok: {e['roundtrip_ok']}, {e['seconds']:.1f} s).", "",
             "| tokenizer | fertility (diagnose_tokenizer) | tokens/word (whitespace) | bytes/token | "
             "continued-word rate | byte-fallback rate |", "| --- | --- | --- | --- | --- | --- |"]
    for k, tw in (("base", e["fertility_before"]), ("extended", e["fertility_after"])):
        lines.append(f"| {k} | {d[k]['fertility']:.3f} | {tw:.3f} | {d[k]['bytes_per_token']:.3f} | "
                     f"{d[k]['continued_word_rate']:.3f} | {d[k]['byte_fallback_rate']:.3f} |")
    lines += ["", "| model | held-out bits per byte | 95% CI |", "| --- | --- | --- |"]
    for k, v in r["bits_per_byte"].items():
        ci = r["bits_per_byte_ci"].get(k)
        lines.append(f"| {k} | {v:.4f} | {_ci(ci)} |")
    lines += ["", "| run | train tokens | approx. train bytes | train loss | train seconds |",
              "| --- | --- | --- | --- | --- |"]
    for k, m in r["train"].items():
        lines.append(f"| {k} | {m['train_tokens']} | {m['approx_train_bytes']:.0f} | {m['train_loss']:.4f} | "
                     f"{m['train_seconds']:.0f} |")
    for k in ("extended_minus_base_untrained", "extended_minus_base_trained"):
        c = r[k]
        lines.append(f"\n{k}: difference {c['difference']:+.4f} bits/byte, CI {_ci(c['confidence_interval'])}, "
                     f"p={c['p_value']:.3g}, better: {c['better']}")
    return "\n".join(lines)


def _ci(ci) -> str:
    if not ci:
        return "-"
    if isinstance(ci, dict):
        ci = (ci.get("low"), ci.get("high"))
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]"


if __name__ == "__main__":
    raise SystemExit(main())

"""Tokenizer diagnostics of mini-gpt2-ru on Bashkir: the report behind docs/results.md#tokenizer-diagnostics.

Diagnoses the tokenizer at ``--model`` on the Bashkir test split, with parity against the Russian and
English sides of the parallel sentences; with ``--train``, also trains a byte-level BPE of the same
vocabulary size on the Bashkir train split and compares the two (``compare_tokenizers``). As a control,
the same tokenizer is diagnosed on the Russian side of the parallel sentences.

Commands::

    # the numbers in docs/results.md#tokenizer-diagnostics (about 1 minute on 2 CPU cores)
    python benchmarks/diagnose_mini_gpt2.py --model ../shared/models/mini-gpt2-ru \\
        --test ../shared/data/bashkir/corpus-test.jsonl \\
        --parallel ../shared/data/bashkir/parallel-ba-ru-en.jsonl \\
        --train ../shared/data/bashkir/corpus-train.jsonl --out /tmp/tokenizer-report.md

    # a tiny run (seconds): the shipped Bashkir sample instead of the test split, no parallel sentences
    python benchmarks/diagnose_mini_gpt2.py --model ../shared/models/mini-gpt2-ru
"""

from __future__ import annotations

import argparse
import json
import time


def read_parallel(path: str) -> list[dict[str, str]]:
    """The rows of a JSON Lines file of aligned sentences ({"ba": ..., "ru": ..., "en": ...})."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="tokenizer folder, e.g. ../shared/models/mini-gpt2-ru")
    parser.add_argument("--test", default=None, help="Bashkir corpus (la.load_corpus); default: shipped sample")
    parser.add_argument("--parallel", default=None, help="JSONL with ba/ru/en sentences, for parity")
    parser.add_argument("--train", default=None, help="Bashkir train corpus: train a BPE of the same size to compare")
    parser.add_argument("--out", default=None, help="write the Markdown here (also printed)")
    parser.add_argument("--json", default=None, help="write the full reports as JSON here")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    import lowres_adapt as la

    tok = AutoTokenizer.from_pretrained(args.model)
    docs = la.load_corpus(args.test) if args.test else la.sample_corpus("ba")
    rows = read_parallel(args.parallel) if args.parallel else []
    parallel = {"ru": [(r["ba"], r["ru"]) for r in rows], "en": [(r["ba"], r["en"]) for r in rows]} if rows else None

    start = time.perf_counter()
    report = la.diagnose_tokenizer(tok, docs, language=la.BASHKIR, parallel=parallel, name=args.model,
                                   progress=False)
    seconds = time.perf_counter() - start
    out = {"bashkir": report.to_dict()}
    md = [f"Texts: {args.test or 'shipped Bashkir sample'} ({report.n_texts} documents); "
          f"diagnosed in {seconds:.1f} s.", "", report.to_markdown()]

    if rows:
        ru = la.diagnose_tokenizer(tok, [r["ru"] for r in rows], language=la.RUSSIAN, name=args.model,
                                   progress=False)
        ba = la.diagnose_tokenizer(tok, [r["ba"] for r in rows], language=la.BASHKIR, name=args.model,
                                   progress=False)
        out["parallel_ru_side"], out["parallel_ba_side"] = ru.to_dict(), ba.to_dict()
        md += ["", f"Control, the {len(rows)} parallel sentences (same content in both languages):", "",
               "| side | fertility | continued-word rate | chars/token | bytes/token | byte fallback | tokens |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
        for label, r in (("Bashkir", ba), ("Russian", ru)):
            md.append(f"| {label} | {r.fertility:.3f} | {r.continued_word_rate:.3f} | {r.chars_per_token:.3f} | "
                      f"{r.bytes_per_token:.3f} | {r.byte_fallback_rate:.4f} | {r.n_tokens} |")

    if args.train:
        train_docs = la.load_corpus(args.train)
        start = time.perf_counter()
        ba_bpe = la.train_tokenizer(train_docs, vocab_size=len(tok), kind="byte_bpe")
        train_seconds = time.perf_counter() - start
        table = la.compare_tokenizers([tok, ba_bpe], docs, language=la.BASHKIR, parallel=parallel,
                                      names=["mini-gpt2-ru", f"byte-BPE {len(tok)} trained on {args.train}"],
                                      progress=False)
        out["comparison"] = list(table)
        md += ["", f"Side by side with a byte-level BPE of the same vocabulary size ({len(tok)}) trained on the "
               f"Bashkir train split ({len(train_docs)} documents, trained in {train_seconds:.0f} s):", "",
               table.to_markdown()]

    text = "\n".join(md).rstrip() + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2, ensure_ascii=False)
    return text


if __name__ == "__main__":
    main()

"""Throughput and peak memory of ``diagnose_tokenizer`` against raw batched ``tokenizer(texts)`` encoding.

The corpus (``--data``: a .txt/.jsonl file or folder for ``la.load_corpus``; default: the shipped Bashkir
sample) is repeated until it holds at least ``--mb`` megabytes of UTF-8 text. Both sides see the same
batches of ``--batch-size`` documents; the runs alternate ``--repeats`` times and the fastest of each
counts. The ratio is diagnostics throughput / raw encoding throughput (target: at least 0.7).

Tokenizers whose pieces spell their text by concatenation (a ByteLevel decoder: GPT-2, Llama 3, Qwen,
DeepSeek; a SentencePiece-style decoder with byte fallback: Llama 2, Mistral) take the piece-bytes path:
ids from ``encode_batch_fast`` and token spans from the bytes each piece spells. Others (WordPiece) take
the offsets path: ``encode_batch`` with offsets. Both decode for the round trip. ``--offsets-path``
forces the offsets path on any tokenizer, to measure both on the same text. Peak memory
is measured on a separate streamed pass (a generator, so the corpus is never a list): the tracemalloc
peak of Python and NumPy allocations during the diagnostics, and the process's peak RSS.

Commands::

    # the measurement for docs/results.md#tokenizer-diagnostics (about 3 minutes on 2 CPU cores)
    python benchmarks/bench_tokenizer_diagnostics.py --tokenizer ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-train.jsonl --mb 50

    # the same on the offsets path (what WordPiece tokenizers, or a normalizer that changes text, take)
    python benchmarks/bench_tokenizer_diagnostics.py --tokenizer ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-train.jsonl --mb 50 --offsets-path

    # a tiny run (seconds): shipped sample, 2 MB
    python benchmarks/bench_tokenizer_diagnostics.py --tokenizer ../shared/models/mini-gpt2-ru --mb 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
import tracemalloc
from collections.abc import Iterator


def repeated(docs: list[str], min_bytes: int) -> Iterator[str]:
    """Yields ``docs`` over and over until at least ``min_bytes`` UTF-8 bytes have been yielded."""
    total = 0
    for doc in itertools.cycle(docs):
        if total >= min_bytes:
            return
        total += len(doc.encode("utf-8"))
        yield doc


def time_both(tok, texts: list[str], batch_size: int, repeats: int):
    """Fastest seconds of raw batched ``tok(batch)`` and of ``diagnose_tokenizer``, alternating runs."""
    import lowres_adapt as la

    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]

    def raw() -> int:
        return sum(len(ids) for batch in batches for ids in tok(batch)["input_ids"])

    def diagnose():
        return la.diagnose_tokenizer(tok, texts, batch_size=batch_size, progress=False)

    raw(), diagnose()  # warm-up: vocabulary tables, allocator, page cache
    times: dict[str, list[float]] = {"raw": [], "diagnostics": []}
    for _ in range(repeats):
        for name, fn in (("raw", raw), ("diagnostics", diagnose)):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "raw":
                n_tokens_raw = out
            else:
                report = out
    return times, n_tokens_raw, report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder (e.g. ../shared/models/mini-gpt2-ru)")
    parser.add_argument("--data", default=None, help="corpus for la.load_corpus; default: shipped Bashkir sample")
    parser.add_argument("--mb", type=float, default=50.0, help="megabytes (10^6 UTF-8 bytes) of text, at least")
    parser.add_argument("--batch-size", type=int, default=512, help="documents per batch, both sides")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed runs; the fastest counts")
    parser.add_argument("--offsets-path", action="store_true",
                        help="force the offsets path (encode_batch with offsets) to measure it on the same tokenizer")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.offsets_path:
        from lowres_adapt.tokenization._counts import TokenizerFacts

        # no piece-byte table: the counter falls back to the tokenizer's offsets for every batch
        TokenizerFacts._piece_bytes = lambda self, pieces, decoded, decoder: None

    from transformers import AutoTokenizer

    import lowres_adapt as la

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    from lowres_adapt.tokenization._counts import TokenizerFacts

    path = "piece-bytes" if TokenizerFacts.load(tok, None).piece_bytes is not None else "offsets"
    docs = la.load_corpus(args.data) if args.data else la.sample_corpus("ba")
    texts = list(repeated(docs, int(args.mb * 1e6)))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"tokenizer {args.tokenizer}; {len(texts)} documents, {n_bytes / 1e6:.1f} MB "
          f"({len(docs)} distinct, from {args.data or 'the shipped Bashkir sample'}); batch {args.batch_size}; "
          f"{path} path")
    times, n_tokens_raw, report = time_both(tok, texts, args.batch_size, args.repeats)
    t_raw, t_diag = min(times["raw"]), min(times["diagnostics"])
    del texts  # the memory pass streams from a generator

    tracemalloc.start()
    streamed = la.diagnose_tokenizer(tok, repeated(docs, int(args.mb * 1e6)), batch_size=args.batch_size,
                                     progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

    result = {
        "tokenizer": args.tokenizer, "data": args.data or "shipped sample (ba)", "megabytes": n_bytes / 1e6,
        "documents": report.n_texts, "tokens": report.n_tokens, "batch_size": args.batch_size, "path": path,
        "raw_seconds": t_raw, "diagnostics_seconds": t_diag,
        "raw_mb_per_s": n_bytes / 1e6 / t_raw, "diagnostics_mb_per_s": n_bytes / 1e6 / t_diag,
        "throughput_ratio": t_raw / t_diag, "all_raw_seconds": times["raw"],
        "all_diagnostics_seconds": times["diagnostics"], "streamed_tracemalloc_peak_mb": peak / 1e6,
        "process_peak_rss_mb": rss / 1e6,
    }
    if streamed.n_tokens != report.n_tokens or n_tokens_raw < report.n_tokens:
        raise RuntimeError(f"token counts disagree: raw {n_tokens_raw}, diagnostics {report.n_tokens}, "
                           f"streamed {streamed.n_tokens}")
    print(f"raw tokenizer(batch):   {t_raw:7.2f} s  {result['raw_mb_per_s']:6.2f} MB/s  ({n_tokens_raw} tokens)")
    print(f"diagnose_tokenizer:     {t_diag:7.2f} s  {result['diagnostics_mb_per_s']:6.2f} MB/s  "
          f"({report.n_tokens} tokens)")
    print(f"throughput ratio diagnostics/raw: {result['throughput_ratio']:.2f} (target >= 0.7)")
    print(f"peak memory, streamed pass: tracemalloc {peak / 1e6:.1f} MB; process peak RSS {rss / 1e6:.0f} MB "
          "(the RSS includes the in-memory corpus of the timed runs)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()

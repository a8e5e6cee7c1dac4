"""The tokenizer zoo: real published tokenizers, offline, on the Bashkir test split.

For every real tokenizer the installed packages ship as a file (Mistral-7B v0.1's SentencePiece model and
the tekken files in mistral-common; GPT-2's and Whisper's multilingual byte-level BPE ranks in
openai-whisper), plus every base model folder in the shared model directory, loads it with
``la.load_tokenizer`` (converted by transformers' own converters and checked against sentencepiece /
tiktoken / mistral_common) and runs ``la.diagnose_tokenizer`` on the Bashkir test split, with parity
against the Russian and English sides of the parallel sentences. Prints a Markdown table (fertility,
bytes per token, byte-fallback share, which special letters stay whole, parity, round-trip failures,
warnings) and writes every report as JSON. The table is recorded in docs/results.md#tokenizer-zoo.

Commands::

    # the numbers in docs/results.md#tokenizer-zoo (about 2 minutes on 2 CPU cores)
    python benchmarks/tokenizer_zoo.py ../shared/data/bashkir --models ../shared/models

    # a quick run (seconds): the first 20 test documents
    python benchmarks/tokenizer_zoo.py ../shared/data/bashkir --limit 20 --json /tmp/zoo.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

# A letter counts as "whole" in the table when at least this share of its occurrences sit inside one
# token holding the whole character (the diagnostics' min_letter_whole_share default).
WHOLE = 0.5

# What each file is the tokenizer of (the study's grid names the models).
_KNOWN = {
    "tokenizer.model.v1": "Mistral-7B v0.1 (SentencePiece BPE, byte fallback)",
    "gpt2.tiktoken": "GPT-2 / DistilGPT2 / GPT-2 medium (byte-level BPE)",
    "multilingual.tiktoken": "Whisper multilingual (byte-level BPE)",
}


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def available_tokenizers(models_dir: Path | None) -> list[tuple[str, Path]]:
    """(label, path) of every real tokenizer found: package files first, then the shared bases."""
    found: list[tuple[str, Path]] = []
    v1 = _package_file("mistral_common", "data", "tokenizer.model.v1")
    if v1:
        found.append((_KNOWN[v1.name], v1))
    data = _package_file("mistral_common", "data")
    for tekken in sorted(data.glob("tekken_*.json")) if data else []:
        found.append((f"Mistral tekken {tekken.stem.split('_')[-1]} (byte-level BPE)", tekken))
    for name in ("gpt2.tiktoken", "multilingual.tiktoken"):
        ranks = _package_file("whisper", "assets", name)
        if ranks:
            found.append((_KNOWN[name], ranks))
    if models_dir is not None and models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
                found.append((f"{folder.name} (shared base)", folder))
    return found


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        dist = {"mistral_common": "mistral-common", "whisper": "openai-whisper"}.get(name, name)
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _warning_labels(warnings: list[str]) -> str:
    """Short names of the warnings: the metric each starts with (``parity vs ru`` keeps its reference)."""
    labels = []
    for w in warnings:
        head = w.split(" is ")[0].split(":")[0]
        labels.append(head.replace("_rate", "").replace("letter_coverage", "letters").replace("roundtrip failed",
                                                                                                 "round trip"))
    return ", ".join(labels) or "none"


def row_of(label: str, rep, seconds: float, letters: str) -> dict:
    cov = rep.letter_coverage
    whole = "".join(c for c in letters if cov[c]["count"] and cov[c]["whole_share"] >= WHOLE)
    split = "".join(c for c in letters if cov[c]["count"] and cov[c]["whole_share"] < WHOLE)
    parity = rep.parity or {}
    return {
        "tokenizer": label, "vocab_size": rep.vocab_size, "n_tokens": rep.n_tokens, "fertility": rep.fertility,
        "bytes_per_token": rep.bytes_per_token, "byte_fallback_rate": rep.byte_fallback_rate,
        "letters_whole": whole, "letters_split": split,
        "min_letter_whole_share": min((v["whole_share"] for v in cov.values() if v["count"]), default=None),
        "parity_ru": parity.get("ru"), "parity_en": parity.get("en"),
        "n_roundtrip_failures": rep.n_roundtrip_failures, "warnings": _warning_labels(rep.warnings),
        "seconds": seconds,
    }


def to_markdown(rows: list[dict]) -> str:
    head = ("| tokenizer | vocabulary | tokens | fertility | bytes/token | byte fallback | letters whole | "
            "letters split | parity ru | parity en | round-trip failures | warnings |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | --- |"]

    def num(x, fmt):
        return "–" if x is None else format(x, fmt)

    for r in rows:
        lines.append(
            f"| {r['tokenizer']} | {r['vocab_size']:,} | {r['n_tokens']:,} | {r['fertility']:.2f} | "
            f"{r['bytes_per_token']:.2f} | {r['byte_fallback_rate']:.1%} | {r['letters_whole'] or '–'} | "
            f"{r['letters_split'] or '–'} | {num(r['parity_ru'], '.2f')} | {num(r['parity_en'], '.2f')} | "
            f"{r['n_roundtrip_failures']} | {r['warnings']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default="../shared/data/bashkir",
                        help="the shared Bashkir folder (corpus-test.jsonl, parallel-ba-ru-en.jsonl)")
    parser.add_argument("--models", default=None, help="folder of base models whose tokenizers join the zoo "
                        "(default: models/ beside the data folder's parent, e.g. ../shared/models)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test documents")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "tokenizer_zoo.json"),
                        help="write the rows and full reports here")
    args = parser.parse_args(argv)

    import lowres_adapt as la
    from lowres_adapt._utils import atomic_write_json, library_versions

    data = Path(args.data)
    test = data / "corpus-test.jsonl"
    if not test.is_file():
        raise SystemExit(f"no {test}: pass the shared Bashkir folder (with corpus-test.jsonl) as the first argument")
    models = Path(args.models) if args.models else data.parent.parent / "models"
    docs = [r["text"] for r in read_jsonl(test, args.limit)]  # diagnose_tokenizer NFC-normalises them
    pairs = read_jsonl(data / "parallel-ba-ru-en.jsonl") if (data / "parallel-ba-ru-en.jsonl").is_file() else []
    parallel = {"ru": [(r["ba"], r["ru"]) for r in pairs], "en": [(r["ba"], r["en"]) for r in pairs]} if pairs else None
    letters = la.BASHKIR.special_letters

    rows, reports, skipped = [], {}, {}
    for label, path in available_tokenizers(models):
        t0 = time.perf_counter()
        try:
            tok = la.load_tokenizer(path)
        except Exception as e:  # a tokenizer that does not load is reported, not fatal to the table
            skipped[label] = f"{type(e).__name__}: {e}"
            print(f"skipped {label}: {skipped[label]}", file=sys.stderr)
            continue
        rep = la.diagnose_tokenizer(tok, docs, language=la.BASHKIR, parallel=parallel, name=label, progress=False)
        rows.append(row_of(label, rep, time.perf_counter() - t0, letters))
        reports[label] = {"path": os.fspath(path), **rep.to_dict()}
        print(f"{label}: fertility {rep.fertility:.2f}, {rep.n_tokens:,} tokens ({rows[-1]['seconds']:.1f} s)",
              file=sys.stderr)

    table = to_markdown(rows)
    print(table)
    result = {
        "command": "python benchmarks/tokenizer_zoo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": os.fspath(test), "n_documents": len(docs), "n_parallel_pairs": len(pairs),
        "whole_letter_share": WHOLE, "versions": {**library_versions(), **_versions("sentencepiece", "tiktoken", "mistral_common", "whisper")}, "rows": rows, "skipped": skipped,
        "markdown": table, "reports": reports,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()

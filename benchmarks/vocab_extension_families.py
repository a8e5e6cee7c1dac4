"""extend_vocabulary on each tokenizer family: tokens added, round trip, fertility on held-out Bashkir.

For ``docs/results.md#vocabulary-extension-on-each-tokenizer-family``. Families: a Llama-2 / Mistral-style
SentencePiece BPE built in-process (Metaspace, byte fallback, trained on the shipped Russian + English
samples), Mistral-7B v0.1's real ``tokenizer.model`` (from mistral-common) in both layouts transformers
converts it to (``legacy=False``: Metaspace pre-tokenizer; ``legacy=True``: "▁" prefix on every chunk),
GPT-2's real byte-level BPE ranks (``gpt2.tiktoken`` from openai-whisper) and the shared mini-gpt2-ru
base. Each gets a tiny Llama with its vocabulary (the rows do not change what is measured here), and
``la.extend_vocabulary`` learns ``--new-tokens`` tokens from the first ``--train-docs`` Bashkir training
documents. Held out: the first ``--eval-docs`` valid documents and the first 100 Russian and English
sentences of the parallel file. Prints a Markdown table; ``--out`` writes every number as JSON.

Commands::

    # the numbers in docs/results.md (about 2 minutes on 2 busy CPU cores)
    python benchmarks/vocab_extension_families.py --shared ../shared --out benchmarks/results/vocab_extension_families.json

    # a quick run
    python benchmarks/vocab_extension_families.py --shared ../shared --new-tokens 200 --train-docs 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import lowres_adapt as la
from lowres_adapt._utils import library_versions


def llama_style():
    """A Llama-2 / Mistral v0.1 layout SentencePiece-style BPE trained in-process on the Russian and English samples."""
    return la.train_tokenizer(la.sample_corpus("ru") + la.sample_corpus("en"), 1000, kind="llama_bpe",
                              min_frequency=0, limit_alphabet=120)


def mistral_v1(legacy: bool):
    import mistral_common
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString((Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1").read_bytes())
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, {p.piece: i for i, p in enumerate(proto.pieces)},
                                                          legacy=legacy)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def gpt2_tiktoken():
    import whisper
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(whisper.__file__).parent / "assets" / "gpt2.tiktoken"
    backend = TikTokenConverter(vocab_file=str(path), extra_special_tokens=["<|endoftext|>"]).converted()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def _jsonl(path: Path, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def _roundtrip_failures(tok, texts: list[str]) -> int:
    return sum(tok.decode(tok(x, add_special_tokens=False)["input_ids"]) != x for x in texts)


def _tokens(tok, texts: list[str]) -> int:
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", required=True, help="the shared folder (data/bashkir, models/mini-gpt2-ru)")
    parser.add_argument("--new-tokens", type=int, default=1000)
    parser.add_argument("--train-docs", type=int, default=400)
    parser.add_argument("--eval-docs", type=int, default=100)
    parser.add_argument("--out", help="write every number as JSON here")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    data = Path(args.shared) / "data" / "bashkir"
    train = [d["text"] for d in _jsonl(data / "corpus-train.jsonl", args.train_docs)]
    held = [d["text"] for d in _jsonl(data / "corpus-valid.jsonl", args.eval_docs)]
    parallel = _jsonl(data / "parallel-ba-ru-en.jsonl", 100)
    ru, en = [d["ru"] for d in parallel], [d["en"] for d in parallel]
    families = {"Llama-style SentencePiece BPE (in-process, 1k)": llama_style,
                "Mistral-7B v0.1 tokenizer.model (Metaspace layout)": lambda: mistral_v1(False),
                "Mistral-7B v0.1 tokenizer.model (legacy layout)": lambda: mistral_v1(True),
                "GPT-2 gpt2.tiktoken (byte-level BPE)": gpt2_tiktoken,
                "mini-gpt2-ru (byte-level BPE, 8k)": lambda: AutoTokenizer.from_pretrained(
                    Path(args.shared) / "models" / "mini-gpt2-ru")}
    rows = []
    for name, build in families.items():
        try:
            tok = build()
        except (ImportError, OSError) as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        model = la.build_tiny_model("llama", vocab_size=len(tok), hidden_size=8, num_layers=1, num_heads=2)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, new_tok, info = la.extend_vocabulary(model, tok, train, max_new_tokens=args.new_tokens,
                                                    fertility_texts=held)
        seconds = time.perf_counter() - t0
        rows.append({
            "tokenizer": name, "vocab": [info.old_vocab_size, info.new_vocab_size],
            # getattr: the script also runs against the library before the fix (AddedToken path), for comparison
            "added": len(info.added_tokens), "merge_steps": getattr(info, "counts", {}).get("added_as_merge_steps", 0),
            "shortfall": getattr(info, "shortfall", ""), "unreachable": len(getattr(info, "unreachable", [])),
            "counts": getattr(info, "counts", {}), "skipped": len(info.skipped),
            "fertility": [info.fertility_before, info.fertility_after],
            "roundtrip_failures": {k: [_roundtrip_failures(tok, v), _roundtrip_failures(new_tok, v)]
                                   for k, v in (("ba_held_out", held), ("ru", ru), ("en", en))},
            "tokens_ru": [_tokens(tok, ru), _tokens(new_tok, ru)], "tokens_en": [_tokens(tok, en), _tokens(new_tok, en)],
            "warnings": [str(w.message) for w in caught if "sequence length" not in str(w.message)],
            "seconds": seconds, "first_tokens": getattr(info, "added_texts", info.added_tokens)[:12],
        })
    report = {"command": " ".join(sys.argv), "settings": vars(args), "rows": rows,
              "library_versions": library_versions()}
    print(_markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return 0


def _markdown(r: dict) -> str:
    n = r["settings"]
    lines = [f"{n['new_tokens']} tokens asked, learnt from {n['train_docs']} Bashkir training documents; held out: "
             f"{n['eval_docs']} valid documents, 100 Russian and 100 English sentences.", "",
             "| tokenizer | vocabulary | added (merge steps) | fertility held-out Bashkir | round-trip failures "
             "ba / ru / en (base -> extended) | ru tokens | en tokens | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        rt = " / ".join(f"{a}->{b}" for a, b in row["roundtrip_failures"].values())
        lines.append(f"| {row['tokenizer']} | {row['vocab'][0]:,} -> {row['vocab'][1]:,} | {row['added']} "
                     f"({row['merge_steps']}) | {row['fertility'][0]:.3f} -> {row['fertility'][1]:.3f} | {rt} | "
                     f"{row['tokens_ru'][0]:,} -> {row['tokens_ru'][1]:,} | {row['tokens_en'][0]:,} -> "
                     f"{row['tokens_en'][1]:,} | {row['seconds']:.1f} |")
    for row in r["rows"]:
        if row["shortfall"] or row["warnings"]:
            lines.append(f"\n{row['tokenizer']}: {row['shortfall'] or ''} {row['warnings']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

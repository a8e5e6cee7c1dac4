"""Trains a Llama-2 / Mistral style SentencePiece BPE on a corpus and saves it, so the tokenizer
benchmarks can measure a SentencePiece-style tokenizer without the Hugging Face Hub.

It is ``la.train_tokenizer(..., kind="llama_bpe")``; the layout is what transformers' ``LlamaTokenizer`` builds: a ``Metaspace`` pre-tokenizer ("▁" prefix on
the first word, no splitting), BPE with byte fallback and the 256 ``<0xNN>`` byte pieces as ordinary
vocabulary, and the decoder ``Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)``. It is trained
word by word (as SentencePiece is), with ``--limit-alphabet`` characters, so rarer letters (capital ``Ҫ``)
fall back to bytes as they do in a real multilingual vocabulary.

Command (3 seconds on 2 CPU cores)::

    python benchmarks/make_llama_style_tokenizer.py --data ../shared/data/bashkir/corpus-train.jsonl \\
        --out /tmp/llama-style-ba --vocab-size 8000
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="corpus for la.load_corpus (.txt/.jsonl file or folder)")
    parser.add_argument("--out", required=True, help="folder to save the tokenizer to")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--limit-alphabet", type=int, default=150)
    args = parser.parse_args(argv)

    import lowres_adapt as la

    tok = la.train_tokenizer(la.iter_corpus(args.data), args.vocab_size, kind="llama_bpe", min_frequency=0,
                             limit_alphabet=args.limit_alphabet)
    tok.save_pretrained(args.out)
    print(f"saved a Llama-style tokenizer ({len(tok)} pieces) to {args.out}")


if __name__ == "__main__":
    main()

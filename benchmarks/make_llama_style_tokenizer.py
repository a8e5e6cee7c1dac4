"""Trains a Llama-2 / Mistral style SentencePiece BPE on a corpus and saves it, so the tokenizer
benchmarks can measure a SentencePiece-style tokenizer without the Hugging Face Hub.

The layout is what transformers' ``LlamaTokenizer`` builds: a ``Metaspace`` pre-tokenizer ("▁" prefix on
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
import json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="corpus for la.load_corpus (.txt/.jsonl file or folder)")
    parser.add_argument("--out", required=True, help="folder to save the tokenizer to")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--limit-alphabet", type=int, default=150)
    args = parser.parse_args(argv)

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    import lowres_adapt as la

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(la.iter_corpus(args.data), trainers.BpeTrainer(
        vocab_size=args.vocab_size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=args.limit_alphabet,
        show_progress=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(256):
        vocab.setdefault(f"<0x{i:02X}>", len(vocab))
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), unk_token="<unk>",
                            bos_token="<s>", eos_token="</s>").save_pretrained(args.out)
    print(f"saved a Llama-style tokenizer ({len(vocab)} pieces) to {args.out}")


if __name__ == "__main__":
    main()

"""Tiny tokenizers and models built in-process, for the offline demo, tests and CPU experiments.

Nothing here downloads anything. A tiny model from scratch shows the pipeline working end to end; it
says nothing about how a pretrained 7B model adapts.

Example::

    >>> import lowres_adapt as la
    >>> docs = la.sample_corpus("ba")
    >>> tok = la.train_tokenizer(docs, vocab_size=300)
    >>> model = la.build_tiny_model("gpt2", tok)
    >>> model.config.vocab_size == len(tok)
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

_ARCHS = ("gpt2", "llama")


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1000,
    *,
    kind: str = "byte_bpe",
    min_frequency: int = 2,
    model_max_length: int = 512,
    limit_alphabet: int | None = None,
):
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` with the ``tokenizers`` library.

    ``kind``: ``"byte_bpe"`` (GPT-2 style byte-level BPE, never unknown), ``"bpe_byte_fallback"``
    (SentencePiece/Llama style BPE over characters with ``<0xNN>`` byte tokens for unseen characters),
    ``"llama_bpe"`` (laid out as Llama-2 / Mistral-7B v0.1 tokenizers: ``Metaspace`` with "▁" on the
    first word and no splitting at encode time, BPE trained word by word as SentencePiece is, byte
    fallback to the 256 ``<0xNN>`` pieces kept as plain vocabulary, the decoder ``Replace("▁", " "),
    ByteFallback, Fuse, Strip(" ", 1, 0)``, ``<unk>``/``<s>``/``</s>``, no BOS added; unlike Mistral's,
    a text's leading space is not kept as a piece of its own), or ``"wordpiece"``
    (BERT style, ``[UNK]`` for unseen characters). The others get ``<|endoftext|>`` as BOS/EOS/pad
    (``[UNK]`` too for WordPiece). ``limit_alphabet`` caps the characters kept as initial pieces of the
    byte-fallback kinds (rarer ones fall back to bytes, as in a real multilingual vocabulary).

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["һаумыһығыҙ, дуҫтар!"] * 20, vocab_size=280)
        >>> tok.decode(tok("һаумыһығыҙ")["input_ids"])
        'һаумыһығыҙ'
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer needs at least one text")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    eos = "<|endoftext|>"
    if kind == "byte_bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=max(vocab_size, 257), min_frequency=min_frequency, special_tokens=[eos],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        special = {"unk_token": eos}
    elif kind == "bpe_byte_fallback":
        byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size + 258, min_frequency=min_frequency,
            special_tokens=["<unk>", eos, *byte_tokens], show_progress=False,
        )
        special = {"unk_token": "<unk>"}
    elif kind == "llama_bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        # trained on words (split=True), as SentencePiece learns pieces within words; encodes unsplit below
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=["<unk>", "<s>", "</s>"],
            show_progress=False,
        )
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=["[UNK]", eos],
            show_progress=False,
        )
        special = {"unk_token": "[UNK]"}
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; use 'byte_bpe', 'bpe_byte_fallback', 'llama_bpe' or "
                         "'wordpiece'")
    if limit_alphabet is not None:
        if kind not in ("llama_bpe", "bpe_byte_fallback"):
            raise ValueError(f"limit_alphabet applies to kind 'llama_bpe' or 'bpe_byte_fallback' (character "
                             f"pieces with byte fallback), not {kind!r}, whose alphabet is fixed")
        trainer.limit_alphabet = limit_alphabet
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "llama_bpe":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        spec = json.loads(tok.to_str())
        vocab = spec["model"]["vocab"]
        for i in range(256):  # byte pieces after the learnt ones, plain vocabulary (not special)
            vocab.setdefault(f"<0x{i:02X}>", len(vocab))
        return PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(json.dumps(spec)), unk_token="<unk>", bos_token="<s>",
            eos_token="</s>", model_max_length=model_max_length, clean_up_tokenization_spaces=False,
        )
    if kind == "bpe_byte_fallback":
        # The trainer puts the byte tokens in the vocabulary as special tokens, so decoding with
        # skip_special_tokens=True (generated text) would drop every byte-fallback letter. Make them plain
        # vocabulary, as in Llama's and Mistral's tokenizer.json.
        spec = json.loads(tok.to_str())
        spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] not in set(byte_tokens)]
        tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=eos, eos_token=eos, pad_token=eos,
        model_max_length=model_max_length, clean_up_tokenization_spaces=False, **special,
    )


def build_tiny_model(
    arch: str = "gpt2",
    tokenizer=None,
    *,
    vocab_size: int | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 256,
    seed: int = 0,
):
    """A randomly initialised causal LM (``"gpt2"`` or ``"llama"`` architecture) built from a config.

    The vocabulary size follows ``tokenizer`` (or ``vocab_size``); the weights are seeded.

    Example::

        >>> import lowres_adapt as la
        >>> m = la.build_tiny_model("llama", vocab_size=100, hidden_size=32)
        >>> type(m).__name__
        'LlamaForCausalLM'
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    if arch not in _ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; use one of {_ARCHS}")
    if tokenizer is not None:
        vocab_size = len(tokenizer)
        eos_id = tokenizer.eos_token_id
        bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    else:
        if vocab_size is None:
            raise ValueError("build_tiny_model needs a tokenizer or a vocab_size")
        eos_id = bos_id = pad_id = 0
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden_size, n_layer=num_layers,
            n_head=num_heads, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
        )
    else:
        config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
            max_position_embeddings=max_positions, bos_token_id=bos_id, eos_token_id=eos_id,
            pad_token_id=pad_id, tie_word_embeddings=False,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)


def save_tiny_checkpoint(
    path: str | Path,
    arch: str = "gpt2",
    texts: Iterable[str] | None = None,
    *,
    tokenizer=None,
    vocab_size: int = 1000,
    **model_kwargs,
) -> Path:
    """Build a tiny model (and, unless given, a tokenizer trained on ``texts``) and save both to ``path``.

    Returns the folder, which loads with ``AutoModelForCausalLM.from_pretrained`` like any hub model,
    so recipes, the evaluator and the study can take it by path.

    Example::

        >>> import tempfile, lowres_adapt as la
        >>> p = la.save_tiny_checkpoint(tempfile.mkdtemp(), "gpt2", la.sample_corpus("ba"), vocab_size=300)
        >>> (p / "config.json").exists()
        True
    """
    path = Path(path)
    if tokenizer is None:
        if texts is None:
            raise ValueError("save_tiny_checkpoint needs texts to train a tokenizer on, or a tokenizer")
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_model(arch, tokenizer, **model_kwargs)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

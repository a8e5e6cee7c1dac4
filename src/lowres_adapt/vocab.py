"""Vocabulary extension: add target-language tokens to a pretrained tokenizer and model.

How it works (:func:`extend_vocabulary`):

1. **Train** a tokenizer of the same kind as the base on the target texts
   (``PreTrainedTokenizerFast.train_new_from_iterator``, i.e. the ``tokenizers`` library with the base's
   normalizer, pre-tokenizer and decoder).
2. **Rank** its tokens that the base does not have. A candidate's score is

   ``score = frequency x (pieces - 1)``

   where ``frequency`` is how often the new tokenizer emits it on the texts and ``pieces`` is how many
   tokens the *base* tokenizer cuts its text into. ``pieces - 1`` is the number of tokens saved each time
   the candidate replaces its pieces, so the score estimates the tokens saved on the corpus; a candidate
   the base already writes as one token saves nothing and is never chosen. Ties break on the token text.
3. **Add** the top ``max_new_tokens`` as ``AddedToken(text, normalized=False)``. The added text is the
   token's *surface* string (the byte-level ``"Ġбала"`` is added as ``" бала"``, leading space included),
   so it matches the raw input before pre-tokenization and decodes back to itself. Added tokens are
   matched greedily (leftmost-longest) before the base model's merges run; the text between them is
   tokenized as before. Every candidate is checked to round-trip on its own (``decode(encode(t)) == t``,
   one id); those that do not (e.g. a string that collides with a byte-level symbol) are skipped.
4. **Resize** the input embeddings (and an untied LM head) and initialise each new row as the mean of the
   rows of the pieces the *old* tokenizer cut the token into; a token with no pieces gets the mean of all
   old rows. With tied embeddings the LM head follows the input embedding.

For LoRA, :func:`new_token_peft_kwargs` gives the ``LoraConfig`` arguments that make only the new rows
trainable (PEFT's ``trainable_token_indices``) or the whole embedding and head (``modules_to_save``).

Example::

    >>> import lowres_adapt as la
    >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
    >>> model = la.build_tiny_model("gpt2", tok)
    >>> model, tok2, info = la.extend_vocabulary(model, tok, la.sample_corpus("ba"), max_new_tokens=20)
    >>> len(tok2) == len(tok) + len(info.added_tokens) == model.get_input_embeddings().num_embeddings
    True
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "TokenCandidate",
    "VocabularyExtension",
    "extend_vocabulary",
    "new_token_peft_kwargs",
    "select_new_tokens",
]

# Documents used for the corpus round-trip check after extension (a sample keeps it fast).
_ROUNDTRIP_DOCS = 200


@dataclass(frozen=True)
class TokenCandidate:
    """One token proposed for the vocabulary, with the numbers that ranked it."""

    text: str = field(metadata={"help": "Surface string added to the tokenizer (leading space included)."})
    frequency: int = field(metadata={"help": "How often the target-trained tokenizer emits it on the texts."})
    pieces: tuple[int, ...] = field(metadata={"help": "Ids the base tokenizer cuts `text` into."})
    score: int = field(metadata={"help": "frequency x (len(pieces) - 1): estimated tokens saved."})


@dataclass
class VocabularyExtension:
    """What :func:`extend_vocabulary` did: the tokens added, their ids and pieces, fertility before/after."""

    added_tokens: list[str] = field(metadata={"help": "Added token strings, in id order."})
    new_token_ids: list[int] = field(metadata={"help": "Their ids in the extended tokenizer."})
    pieces: dict[str, list[int]] = field(metadata={"help": "Old-tokenizer ids each new row was averaged from."})
    frequencies: dict[str, int] = field(default_factory=dict, metadata={"help": "Candidate frequency."})
    scores: dict[str, int] = field(default_factory=dict, metadata={"help": "Ranking score per token."})
    fertility_before: float = field(default=float("nan"), metadata={"help": "Tokens per word, base."})
    fertility_after: float = field(default=float("nan"), metadata={"help": "Tokens per word, extended."})
    fertility_method: str = field(default="", metadata={"help": "How fertility was computed."})
    tokens_before: int = field(default=0, metadata={"help": "Tokens on the fertility texts, base."})
    tokens_after: int = field(default=0, metadata={"help": "Tokens on the fertility texts, extended."})
    roundtrip_ok: bool = field(default=True, metadata={"help": "decode(encode(x)) == x on sampled texts."})
    skipped: dict[str, str] = field(default_factory=dict, metadata={"help": "Rejected candidates: reason."})
    old_vocab_size: int = field(default=0, metadata={"help": "len(tokenizer) before extension."})
    new_vocab_size: int = field(default=0, metadata={"help": "len(tokenizer) after extension."})
    trained_vocab_size: int | None = field(default=None, metadata={"help": "Size of the target tokenizer."})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def __repr__(self) -> str:
        return (f"VocabularyExtension(added={len(self.added_tokens)}, vocab {self.old_vocab_size}->"
                f"{self.new_vocab_size}, fertility {self.fertility_before:.3f}->{self.fertility_after:.3f})")


def select_new_tokens(
    tokenizer,
    texts: Iterable[str],
    max_new_tokens: int = 1000,
    *,
    vocab_size: int | None = None,
    min_frequency: int = 2,
) -> list[TokenCandidate]:
    """The best ``max_new_tokens`` tokens to add to ``tokenizer`` for ``texts``, best first.

    Trains a tokenizer of the base's kind on ``texts`` (``vocab_size`` defaults to
    ``4 * max_new_tokens + 256``), keeps its tokens the base lacks whose surface string round-trips
    through the base's decoder, and ranks them by ``frequency x (pieces - 1)`` (see the module docstring).
    Candidates seen fewer than ``min_frequency`` times are dropped.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> cands = la.vocab.select_new_tokens(tok, la.sample_corpus("ba"), 5)
        >>> len(cands), cands[0].score >= cands[-1].score
        (5, True)
    """
    texts = [t for t in texts if t]
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if not texts:
        raise ValueError("select_new_tokens needs at least one non-empty text to learn tokens from")
    _check_fast(tokenizer)
    if vocab_size is None:
        vocab_size = 4 * max_new_tokens + 256
    if max_new_tokens == 0:
        return []
    trained = tokenizer.train_new_from_iterator(texts, vocab_size=vocab_size)
    counts: Counter[int] = Counter()
    for enc in trained.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        counts.update(enc.ids)
    base_vocab = tokenizer.get_vocab()
    decoder = trained.backend_tokenizer.decoder
    special = set(trained.all_special_tokens)
    surfaces: list[tuple[str, int]] = []
    seen: set[str] = set()
    for token, tid in trained.get_vocab().items():
        freq = counts.get(tid, 0)
        if freq < min_frequency or token in special or token in base_vocab:
            continue
        text = _surface(decoder, token)
        if text is None or text in base_vocab or text in seen:
            continue
        seen.add(text)
        surfaces.append((text, freq))
    if not surfaces:
        return []
    pieces = tokenizer([s for s, _ in surfaces], add_special_tokens=False)["input_ids"]
    cands = [TokenCandidate(text=s, frequency=f, pieces=tuple(p), score=f * (len(p) - 1))
             for (s, f), p in zip(surfaces, pieces, strict=True)]
    cands = [c for c in cands if c.score > 0]
    cands.sort(key=lambda c: (-c.score, c.text))
    return cands[:max_new_tokens]


def extend_vocabulary(
    model,
    tokenizer=None,
    texts: Iterable[str] = (),
    max_new_tokens: int = 1000,
    *,
    vocab_size: int | None = None,
    min_frequency: int = 2,
    new_tokens: Sequence[str] | None = None,
    fertility_texts: Iterable[str] | None = None,
):
    """``(model, tokenizer, info)``: copies extended with up to ``max_new_tokens`` target-language tokens.

    ``model``: a causal LM or a path to one (then ``tokenizer`` may be omitted); ``texts``: target-language
    documents the new tokens are learnt from. ``new_tokens`` skips the learning and adds exactly these
    strings (each must round-trip; duplicates of existing tokens are refused). New embedding rows are the
    mean of the rows of the pieces the old tokenizer cut each token into. ``info``
    (:class:`VocabularyExtension`) lists the added tokens and the fertility (tokens per word) before and
    after, measured on ``fertility_texts`` (default: ``texts``). The inputs are not modified.

    Extend *before* adding LoRA adapters; see :func:`new_token_peft_kwargs` to train the new rows.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> m2, t2, info = la.extend_vocabulary(model, tok, new_tokens=[" һәм"])
        >>> t2.convert_ids_to_tokens(t2(" һәм")["input_ids"]), info.new_token_ids == [len(tok)]
        ([' һәм'], True)
    """
    import torch
    from tokenizers import AddedToken

    model, tokenizer = _load_if_path(model, tokenizer)
    if hasattr(model, "peft_config"):
        raise ValueError("extend_vocabulary got a PEFT model; extend the vocabulary of the base model first, "
                         "then add adapters (see lowres_adapt.vocab.new_token_peft_kwargs)")
    _check_fast(tokenizer)
    texts = [t for t in texts if t]
    fert_texts = texts if fertility_texts is None else [t for t in fertility_texts if t]

    cands: dict[str, TokenCandidate] = {}
    if new_tokens is None:
        if not texts:
            raise ValueError("extend_vocabulary needs target-language texts to learn new tokens from "
                             "(or an explicit new_tokens=[...] list)")
        for c in select_new_tokens(tokenizer, texts, max_new_tokens, vocab_size=vocab_size,
                                   min_frequency=min_frequency):
            cands[c.text] = c
        wanted = list(cands)
    else:
        wanted = list(dict.fromkeys(new_tokens))
        vocab = tokenizer.get_vocab()
        clash = [t for t in wanted if not isinstance(t, str) or not t or t in vocab]
        if clash:
            raise ValueError(f"new_tokens {clash[:5]!r} are empty or already in the vocabulary; "
                             "pass only strings the tokenizer does not have yet")

    # Round-trip each candidate on a scratch copy; keep only the faithful ones.
    scratch = copy.deepcopy(tokenizer)
    scratch.add_tokens([AddedToken(t, normalized=False) for t in wanted])
    skipped: dict[str, str] = {}
    kept = []
    for t in wanted:
        ids = scratch(t, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] < len(tokenizer) or scratch.decode(ids) != t:
            skipped[t] = f"does not round-trip (encodes to {scratch.convert_ids_to_tokens(ids)!r})"
        else:
            kept.append(t)
    if new_tokens is not None and skipped:
        raise ValueError(f"these new_tokens cannot be added faithfully: {skipped}; drop them or add them "
                         "with the leading-space form the tokenizer expects")

    new_tok = copy.deepcopy(tokenizer)
    new_tok.add_tokens([AddedToken(t, normalized=False) for t in kept])
    new_ids = new_tok.convert_tokens_to_ids(kept)
    pieces = {t: (list(cands[t].pieces) if t in cands else tokenizer(t, add_special_tokens=False)["input_ids"])
              for t in kept}

    model = copy.deepcopy(model)
    emb = model.get_input_embeddings()
    old_rows = emb.weight.shape[0]
    out = model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.weight.data_ptr()
    old_in = emb.weight.detach().clone()
    old_out = None if (out is None or tied) else out.weight.detach().clone()
    old_bias = None if (out is None or tied or getattr(out, "bias", None) is None) else out.bias.detach().clone()
    model.resize_token_embeddings(max(old_rows, len(new_tok)), mean_resizing=False)
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    with torch.no_grad():
        for t, i in zip(kept, new_ids, strict=True):
            p = [j for j in pieces[t] if j < old_rows]
            emb.weight[i] = old_in[p].mean(0) if p else old_in.mean(0)
            if old_out is not None:
                out.weight[i] = old_out[p].mean(0) if p else old_out.mean(0)
            if old_bias is not None:
                out.bias[i] = old_bias[p].mean() if p else old_bias.mean()

    f_before, n_before, method = _fertility(tokenizer, fert_texts)
    f_after, n_after, _ = _fertility(new_tok, fert_texts)
    rt_before = _roundtrip(tokenizer, fert_texts)
    rt_after = _roundtrip(new_tok, fert_texts)
    if rt_before and not rt_after:
        warnings.warn("the extended tokenizer no longer round-trips some texts (decode(encode(x)) != x); "
                      "inspect info.added_tokens", stacklevel=2)
    info = VocabularyExtension(
        added_tokens=kept, new_token_ids=list(new_ids), pieces=pieces,
        frequencies={t: cands[t].frequency for t in kept if t in cands},
        scores={t: cands[t].score for t in kept if t in cands},
        fertility_before=f_before, fertility_after=f_after, fertility_method=method,
        tokens_before=n_before, tokens_after=n_after, roundtrip_ok=rt_after, skipped=skipped,
        old_vocab_size=len(tokenizer), new_vocab_size=len(new_tok),
        trained_vocab_size=(vocab_size if vocab_size is not None else 4 * max_new_tokens + 256)
        if new_tokens is None else None,
    )
    return model, new_tok, info


def new_token_peft_kwargs(model, token_ids: Sequence[int] | VocabularyExtension,
                          how: str = "trainable_tokens") -> dict[str, Any]:
    """``LoraConfig`` keyword arguments that make the new embedding rows trainable under LoRA.

    ``how="trainable_tokens"`` (default) trains only the given rows, through PEFT's
    ``trainable_token_indices`` (a small delta per row; with tied embeddings PEFT ties the LM head to it,
    an untied head gets its own rows). ``how="modules_to_save"`` trains full copies of the input
    embedding and the LM head (more memory, also updates old rows; tied weights stay tied through
    ``ensure_weight_tying``).

    Example::

        >>> import lowres_adapt as la
        >>> m = la.build_tiny_model("llama", vocab_size=50, hidden_size=16)
        >>> la.vocab.new_token_peft_kwargs(m, [48, 49])
        {'trainable_token_indices': {'embed_tokens': [48, 49], 'lm_head': [48, 49]}}
    """
    ids = list(token_ids.new_token_ids if isinstance(token_ids, VocabularyExtension) else token_ids)
    if how not in ("trainable_tokens", "modules_to_save"):
        raise ValueError(f"how must be 'trainable_tokens' or 'modules_to_save', got {how!r}")
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    emb_name = names[id(emb)]
    tied = out is not None and out.weight.data_ptr() == emb.weight.data_ptr()
    head_name = None if out is None else names[id(out)]
    if how == "modules_to_save":
        out_kwargs: dict[str, Any] = {"modules_to_save": [emb_name] + ([head_name] if head_name else [])}
        if tied:  # one trained copy shared by input and output, as in the base (PEFT >= 0.18)
            out_kwargs["ensure_weight_tying"] = True
        return out_kwargs
    if not ids:
        raise ValueError("no token ids to train; extend_vocabulary added no tokens")
    layers = {emb_name: ids}
    if head_name and not tied:
        layers[head_name] = ids
    return {"trainable_token_indices": layers}


# --- helpers -----------------------------------------------------------------------------------------


def _load_if_path(model, tokenizer):
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from pathlib import Path

        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"model path {str(path)!r} does not exist; pass a model folder or object")
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
    if tokenizer is None:
        raise ValueError("extend_vocabulary needs the model's tokenizer (tokenizer=...)")
    return model, tokenizer


def _check_fast(tokenizer) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} has no `tokenizers` backend; load the fast tokenizer "
                         "(AutoTokenizer.from_pretrained(..., use_fast=True))")
    kind = type(backend.model).__name__
    if kind not in ("BPE", "Unigram"):
        raise ValueError(f"vocabulary extension supports BPE and Unigram tokenizers, got a {kind} model; "
                         "causal LMs almost always use BPE")


def _surface(decoder, token: str) -> str | None:
    """The text ``token`` stands for mid-sentence (leading space kept), or None if it is not whole text.

    Decoding after an anchor keeps decoders that strip the first token's leading space (Metaspace) honest.
    """
    if decoder is None:
        text = token
    else:
        anchor = decoder.decode(["a"])
        both = decoder.decode(["a", token])
        text = both[len(anchor):] if anchor == "a" and both.startswith(anchor) else decoder.decode([token])
    if not text or not text.strip() or "\ufffd" in text:  # empty, whitespace only, or a partial character
        return None
    return text


def _fertility(tokenizer, texts: list[str]) -> tuple[float, int, str]:
    """(tokens per whitespace-separated word, tokens, method) on ``texts``."""
    if not texts:
        return float("nan"), 0, ""
    n_tok = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    n_words = sum(len(t.split()) for t in texts)
    return (n_tok / n_words if n_words else float("nan")), n_tok, "tokens per whitespace-separated word"


def _roundtrip(tokenizer, texts: list[str]) -> bool:
    sample = texts[:_ROUNDTRIP_DOCS]
    if not sample:
        return True
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    return all(tokenizer.decode(i) == t for i, t in zip(ids, sample, strict=True))

"""Vocabulary extension: add target-language tokens to a pretrained tokenizer and model.

How it works (:func:`extend_vocabulary`), for the BPE tokenizers of causal LMs (byte-level like GPT-2,
or SentencePiece-style like Llama-2 / Mistral-7B v0.1: ``"▁"`` for spaces, byte fallback):

1. **Train** a tokenizer of the same kind as the base on the target texts
   (``PreTrainedTokenizerFast.train_new_from_iterator`` with the base's normalizer, pre-tokenizer and
   decoder). A SentencePiece-style base is trained word by word, as SentencePiece is: its Metaspace
   pre-tokenizer does not split (``split=False``), which would let pieces cross word boundaries.
2. **Rank** its pieces that the base does not have. A candidate's score is

   ``score = frequency x (pieces - 1)``

   where ``frequency`` is how often the new tokenizer emits it on the texts and ``pieces`` is how many
   tokens the *base* BPE model cuts it into. ``pieces - 1`` is the number of tokens saved each time
   the candidate replaces its pieces, so the score estimates the tokens saved on the corpus; a candidate
   the base already writes as one token saves nothing and is never chosen. Ties break on the token text.
   Candidates emitted fewer than ``min_frequency`` times are dropped.
3. **Add them to the BPE model**, best first, as regular vocabulary entries with merges (the way
   transformers' SentencePiece and tiktoken converters write merges): a piece the base cuts into more
   than two pieces needs intermediate entries to be reachable (``"▁Баш"``, ``"ҡ"``, ``"▁Башҡ"`` ...
   before ``"▁Башҡортостан"``); the cheapest such merge tree over the base's pieces is found and its missing
   entries are added first (``info.needed_by``), counted in ``max_new_tokens``. New merges rank after
   the base's. Since new pieces are concatenations of the base's own symbols, decoding is unchanged:
   the extended tokenizer round-trips every text the base did. Exactly ``max_new_tokens`` entries are
   added unless the candidates run out; then ``info.shortfall`` says why, with the counts
   (``info.counts``).
4. **Resize** the input embeddings (and an untied LM head) and initialise each new row as the mean of the
   rows of the pieces the *old* tokenizer cut the token into (byte-fallback bytes included); a token with
   no pieces gets the mean of all old rows. With tied embeddings the LM head follows the input embedding.

Explicit ``new_tokens=[...]`` (and Unigram tokenizers) are added as ``AddedToken(text, normalized=False)``
instead: matched on the raw text before pre-tokenization; each must round-trip on its own.

For LoRA, :func:`new_token_peft_kwargs` gives the ``LoraConfig`` arguments that make only the new rows
trainable (PEFT's ``trainable_token_indices``) or the whole embedding and head (``modules_to_save``).

Example::

    >>> import lowres_adapt as la
    >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
    >>> model = la.build_tiny_model("gpt2", tok)
    >>> model, tok2, info = la.extend_vocabulary(model, tok, la.sample_corpus("ba"), max_new_tokens=20)
    >>> len(tok2) == len(tok) + 20 == model.get_input_embeddings().num_embeddings
    True
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _bpe

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

    text: str = field(metadata={"help": "Text the token stands for mid-sentence (leading space included)."})
    frequency: int = field(metadata={"help": "How often the target-trained tokenizer emits it on the texts."})
    pieces: tuple[int, ...] = field(metadata={"help": "Ids the base tokenizer cuts the token into."})
    score: int = field(metadata={"help": "frequency x (len(pieces) - 1): estimated tokens saved."})
    token: str = field(default="", metadata={"help": "The vocabulary entry (e.g. '▁бала', 'Ġбала')."})
    needed_by: str | None = field(default=None, metadata={
        "help": "Set when added as a merge step of this longer token rather than for its own score."})


@dataclass
class VocabularyExtension:
    """What :func:`extend_vocabulary` did: the tokens added, their ids and pieces, fertility before/after."""

    added_tokens: list[str] = field(metadata={"help": "Added vocabulary entries, in id order."})
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
    added_texts: list[str] = field(default_factory=list, metadata={
        "help": "The text each added token stands for mid-sentence, in id order."})
    method: str = field(default="", metadata={
        "help": "'bpe_model' (entries + merges in the BPE model) or 'added_tokens' (AddedToken)."})
    needed_by: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Tokens added as merge steps of a longer token: step -> that token."})
    counts: dict[str, int] = field(default_factory=dict, metadata={
        "help": "Candidate tallies: requested, trained_vocab, in_base_vocab, candidates, below_min_frequency, "
                "no_saving, unbuildable, over_budget, unbuildable_steps, unreachable_dropped, eligible, added, "
                "added_as_merge_steps."})
    shortfall: str = field(default="", metadata={"help": "Why fewer than max_new_tokens were added ('' if not)."})
    unreachable: list[str] = field(default_factory=list, metadata={
        "help": "Added tokens the extended tokenizer does not produce even for their own text (should be [])."})

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
    """The tokens :func:`extend_vocabulary` would add to ``tokenizer`` for ``texts``, in the order it adds them.

    Trains a tokenizer of the base's kind on ``texts`` (``vocab_size`` defaults to
    ``4 * max_new_tokens + 256``) and ranks its tokens the base lacks by ``frequency x (pieces - 1)``
    (see the module docstring); candidates seen fewer than ``min_frequency`` times are dropped. For a
    BPE base the list holds up to ``max_new_tokens`` vocabulary entries, best first, each preceded by the
    merge steps it needs (``needed_by`` set); for a Unigram base, the best surface strings.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> cands = la.tokenization.select_new_tokens(tok, la.sample_corpus("ba"), 5)
        >>> len(cands), cands[0].score >= cands[-1].score
        (5, True)
    """
    texts, vocab_size = _check_selection(tokenizer, texts, max_new_tokens, vocab_size, min_frequency)
    if max_new_tokens == 0:
        return []
    if _bpe.is_bpe(tokenizer):
        _, entries, _, _ = _bpe.extend_bpe(tokenizer, texts, max_new_tokens, vocab_size, min_frequency)
        return [_candidate(tokenizer, e) for e in entries]
    return _select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency)


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
    """``(model, tokenizer, info)``: copies extended with ``max_new_tokens`` target-language tokens.

    ``model``: a causal LM or a path to one (then ``tokenizer`` may be omitted); ``texts``: target-language
    documents the new tokens are learnt from. On a BPE tokenizer they are added to the BPE model
    (vocabulary entries and merges), so the extended tokenizer round-trips every text the base did;
    fewer than ``max_new_tokens`` only when the candidates run out, and then ``info.shortfall`` says why.
    ``new_tokens`` skips the learning and adds exactly these strings as added tokens (each must
    round-trip; duplicates of existing tokens are refused). New embedding rows are the mean of the rows
    of the pieces the old tokenizer cut each token into. ``info`` (:class:`VocabularyExtension`) lists
    the added tokens and the fertility (tokens per word) before and after, measured on
    ``fertility_texts`` (default: ``texts``). The inputs are not modified.

    Extend *before* adding LoRA adapters; see :func:`new_token_peft_kwargs` to train the new rows.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> m2, t2, info = la.extend_vocabulary(model, tok, new_tokens=[" һәм"])
        >>> t2.convert_ids_to_tokens(t2(" һәм")["input_ids"]), info.new_token_ids == [len(tok)]
        ([' һәм'], True)
    """
    model, tokenizer = _load_if_path(model, tokenizer)
    if hasattr(model, "peft_config"):
        raise ValueError("extend_vocabulary got a PEFT model; extend the vocabulary of the base model first, "
                         "then add adapters (see lowres_adapt.tokenization.new_token_peft_kwargs)")
    _check_fast(tokenizer)
    texts = [t for t in texts if t]
    fert_texts = texts if fertility_texts is None else [t for t in fertility_texts if t]
    if new_tokens is None:
        if not texts:
            raise ValueError("extend_vocabulary needs target-language texts to learn new tokens from "
                             "(or an explicit new_tokens=[...] list)")
        texts, vocab_size = _check_selection(tokenizer, texts, max_new_tokens, vocab_size, min_frequency)

    extra: dict[str, Any] = {}
    if new_tokens is None and _bpe.is_bpe(tokenizer):
        new_tok, entries, counts, unreachable = _bpe.extend_bpe(tokenizer, texts, max_new_tokens,
                                                                      vocab_size, min_frequency)
        kept = [e["token"] for e in entries]
        cands = {e["token"]: _candidate(tokenizer, e) for e in entries}
        skipped: dict[str, str] = {}
        extra = dict(method="bpe_model", counts=counts, unreachable=unreachable,
                     shortfall=_shortfall(counts, min_frequency, vocab_size),
                     needed_by={e["token"]: e["needed_by"] for e in entries if e["needed_by"]})
        if extra["shortfall"]:
            warnings.warn(f"extend_vocabulary added {len(kept)} of {max_new_tokens} tokens: {extra['shortfall']}",
                          stacklevel=2)
    else:
        new_tok, kept, cands, skipped = _add_as_added_tokens(tokenizer, texts, max_new_tokens, vocab_size,
                                                             min_frequency, new_tokens)
        extra = dict(method="added_tokens")
    new_ids = new_tok.convert_tokens_to_ids(kept)
    pieces = {t: list(cands[t].pieces) if t in cands else tokenizer(t, add_special_tokens=False)["input_ids"]
              for t in kept}
    model = _resize_and_init(model, max([len(new_tok), *(i + 1 for i in new_ids)]), kept, new_ids, pieces)

    f_before, n_before, method = _fertility(tokenizer, fert_texts)
    f_after, n_after, _ = _fertility(new_tok, fert_texts)
    rt_sample = fert_texts[:_ROUNDTRIP_DOCS] + (texts[:_ROUNDTRIP_DOCS] if fert_texts is not texts else [])
    rt_before = _roundtrip(tokenizer, rt_sample)
    rt_after = _roundtrip(new_tok, rt_sample)
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
        trained_vocab_size=vocab_size if new_tokens is None else None,
        added_texts=[cands[t].text if t in cands else t for t in kept], **extra,
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
        >>> la.tokenization.new_token_peft_kwargs(m, [48, 49])
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


def _check_selection(tokenizer, texts, max_new_tokens, vocab_size, min_frequency) -> tuple[list[str], int]:
    texts = [t for t in texts if t]
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if not texts:
        raise ValueError("select_new_tokens needs at least one non-empty text to learn tokens from")
    _check_fast(tokenizer)
    return texts, (4 * max_new_tokens + 256 if vocab_size is None else vocab_size)


def _candidate(tokenizer, entry: dict) -> TokenCandidate:
    decoder = tokenizer.backend_tokenizer.decoder
    # A byte-level step may hold part of a character: its text then shows U+FFFD.
    text = _surface(decoder, entry["token"]) or (decoder.decode([entry["token"]]) if decoder else entry["token"])
    return TokenCandidate(text=text, frequency=entry["frequency"], pieces=tuple(entry["pieces"]),
                          score=entry["score"], token=entry["token"], needed_by=entry["needed_by"])


def _shortfall(counts: dict[str, int], min_frequency: int, vocab_size: int) -> str:
    if counts["added"] >= counts["requested"]:
        return ""
    return (f"the target tokenizer (vocab_size={vocab_size}, {counts['trained_vocab']} entries) had "
            f"{counts['candidates']} tokens the base lacks ({counts['in_base_vocab']} others it already has); "
            f"{counts['below_min_frequency']} were emitted fewer than min_frequency={min_frequency} times, "
            f"{counts['no_saving']} save no token, {counts['unbuildable']} cannot be built from the base's "
            f"pieces, {counts['over_budget']} needed more merge steps than were left and "
            f"{counts['unreachable_dropped']} were dropped as unreachable; "
            f"{counts['eligible']} were eligible. Raise vocab_size or lower min_frequency for more")


def _select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency) -> list[TokenCandidate]:
    """Candidates as surface strings (the added-token path, for Unigram tokenizers)."""
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
    cands = [TokenCandidate(text=s, frequency=f, pieces=tuple(p), score=f * (len(p) - 1), token=s)
             for (s, f), p in zip(surfaces, pieces, strict=True)]
    cands = [c for c in cands if c.score > 0]
    cands.sort(key=lambda c: (-c.score, c.text))
    return cands[:max_new_tokens]


def _add_as_added_tokens(tokenizer, texts, max_new_tokens, vocab_size, min_frequency, new_tokens):
    """(new tokenizer, kept strings, candidates by string, skipped) for the AddedToken path."""
    from tokenizers import AddedToken

    cands: dict[str, TokenCandidate] = {}
    if new_tokens is None:
        for c in _select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency):
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
    return new_tok, kept, cands, skipped


def _resize_and_init(model, n_rows: int, kept: list[str], new_ids: list[int], pieces: dict[str, list[int]]):
    """A copy of ``model`` with ``n_rows`` embedding rows; each new row the mean of its pieces' old rows."""
    import torch

    model = copy.deepcopy(model)
    emb = model.get_input_embeddings()
    old_rows = emb.weight.shape[0]
    out = model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.weight.data_ptr()
    old_in = emb.weight.detach().clone()
    old_out = None if (out is None or tied) else out.weight.detach().clone()
    old_bias = None if (out is None or tied or getattr(out, "bias", None) is None) else out.bias.detach().clone()
    model.resize_token_embeddings(max(old_rows, n_rows), mean_resizing=False)
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
    return model


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

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
4. **Resize** the input embeddings (and an untied LM head) and initialise the new rows with ``init``:
   ``"mean"`` (default; FVT: the mean of the rows of the pieces the *old* tokenizer cut the token into,
   byte-fallback bytes included), ``"merge"`` (the mean of the two rows the token's BPE merge joins,
   built in merge order), ``"covariance"`` (a draw from the old rows' mean and scaled covariance, as
   transformers does) or ``"random"`` (small normal, a control); see ``_rows.py``. With tied embeddings
   the LM head follows the input embedding; an untied head gets the same init from its own rows.

Explicit ``new_tokens=[...]`` (any fast tokenizer, WordPiece included) and learnt tokens of a Unigram
tokenizer are added as ``AddedToken(text, normalized=False)`` instead: matched on the raw text before
pre-tokenization; each must round-trip on its own. No merge creates them, so ``init="merge"`` is refused.

:func:`new_token_peft_kwargs` gives the arguments that make only the new rows trainable (PEFT's
``trainable_token_indices`` for LoRA/QLoRA, the same field of ``FullFineTuning``) or the whole embedding
and head (``modules_to_save``).

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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _bpe, _rows
from ._added import TokenCandidate, add_as_added_tokens, select_surfaces, surface

__all__ = [
    "INITS",
    "TokenCandidate",
    "VocabularyExtension",
    "check_init",
    "extend_vocabulary",
    "init_new_embeddings",
    "new_token_peft_kwargs",
    "select_new_tokens",
]

INITS = _rows.INITS  # the ways extend_vocabulary(init=...) can initialise the new rows
_NO_MERGE_INITS = tuple(i for i in INITS if i != "merge")

# Documents used for the corpus round-trip check after extension (a sample keeps it fast).
_ROUNDTRIP_DOCS = 200


@dataclass
class VocabularyExtension:
    """What :func:`extend_vocabulary` did: the tokens added, their ids and pieces, fertility before/after."""

    added_tokens: list[str] = field(metadata={"help": "Added vocabulary entries, in id order."})
    new_token_ids: list[int] = field(metadata={"help": "Their ids in the extended tokenizer."})
    pieces: dict[str, list[int]] = field(metadata={"help": "Old-tokenizer ids each new token was cut into."})
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
    init: str = field(default="mean", metadata={"help": "How the new rows were initialised (one of INITS)."})
    init_seed: int = field(default=0, metadata={"help": "Seed of the 'covariance' and 'random' draws."})
    merge_parents: dict[str, list[str]] = field(default_factory=dict, metadata={
        "help": "init='merge': token -> the two entries its merge joins (their rows were averaged)."})
    init_fallback: list[str] = field(default_factory=list, metadata={
        "help": "init='merge': new tokens no merge creates, initialised as 'mean' instead."})

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
    return select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency)


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
    init: str = "mean",
    seed: int = 0,
    inplace: bool = False,
    model_kwargs: dict[str, Any] | None = None,
):
    """``(model, tokenizer, info)``: copies extended with ``max_new_tokens`` target-language tokens.

    ``model``: a causal LM or a path to one (then ``tokenizer`` may be omitted); ``texts``: target-language
    documents the new tokens are learnt from. On a BPE tokenizer they are added to the BPE model
    (vocabulary entries and merges), so the extended tokenizer round-trips every text the base did;
    fewer than ``max_new_tokens`` only when the candidates run out, and then ``info.shortfall`` says why.
    ``new_tokens`` skips the learning and adds exactly these strings as added tokens (each must
    round-trip; duplicates of existing tokens are refused). ``init`` picks how the new embedding rows
    start: ``"mean"`` (of the rows of the pieces the old tokenizer cut each token into), ``"merge"`` (of
    the two rows the token's BPE merge joins; BPE tokenizers only), ``"covariance"`` (drawn from the old
    rows' mean and covariance, as transformers does) or ``"random"``; ``seed`` seeds the draws. ``info`` (:class:`VocabularyExtension`) lists
    the added tokens and the fertility (tokens per word) before and after, measured on
    ``fertility_texts`` (default: ``texts``). The inputs are not modified: a model object is copied
    first unless ``inplace=True`` (which saves a second copy of a 7B model's weights in memory); a model
    path loads through the library's one loader in full precision (``model_kwargs`` passed on) and is
    extended in place, with no copy.

    Extend *before* adding LoRA adapters; see :func:`new_token_peft_kwargs` to train the new rows.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> m2, t2, info = la.extend_vocabulary(model, tok, new_tokens=[" һәм"])
        >>> t2.convert_ids_to_tokens(t2(" һәм")["input_ids"]), info.new_token_ids == [len(tok)]
        ([' һәм'], True)
    """
    check_init(init, seed=seed)
    loaded_here = isinstance(model, (str, bytes)) or hasattr(model, "__fspath__")
    model, tokenizer = _load_if_path(model, tokenizer, init, new_tokens, model_kwargs)
    if hasattr(model, "peft_config"):
        raise ValueError("extend_vocabulary got a PEFT model; extend the vocabulary of the base model first, "
                         "then add adapters (see lowres_adapt.tokenization.new_token_peft_kwargs)")
    _check_fast(tokenizer, learning=new_tokens is None)
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
        new_tok, kept, cands, skipped = add_as_added_tokens(tokenizer, texts, max_new_tokens, vocab_size,
                                                             min_frequency, new_tokens)
        extra = dict(method="added_tokens")
    new_ids = new_tok.convert_tokens_to_ids(kept)
    pieces = {t: list(cands[t].pieces) if t in cands else tokenizer(t, add_special_tokens=False)["input_ids"]
              for t in kept}
    parents = _rows.creating_merges(new_tok, kept) if init == "merge" else {}
    if not (inplace or loaded_here):  # the caller's model stays as it was
        model = copy.deepcopy(model)
    model = _resize_and_init(model, len(new_tok), kept, new_ids, pieces, init, seed,
                             {new_tok.convert_tokens_to_ids(t): new_tok.convert_tokens_to_ids(list(m))
                              for t, m in parents.items()})

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
        added_texts=[cands[t].text if t in cands else t for t in kept], init=init, init_seed=seed,
        merge_parents={t: list(m) for t, m in parents.items()},
        init_fallback=[t for t in kept if t not in parents] if init == "merge" else [], **extra,
    )
    return model, new_tok, info


def init_new_embeddings(model, tokenizer, info: VocabularyExtension, init: str = "mean", *, seed: int = 0):
    """A copy of the *base* ``model`` resized to the extended ``tokenizer``, its new rows initialised by ``init``.

    What :func:`extend_vocabulary` does after choosing the tokens, for comparing initialisations without
    learning the tokens again: ``tokenizer`` and ``info`` are what it returned for this base.

    Example::

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(la.sample_corpus("ru"), vocab_size=300)
        >>> model = la.build_tiny_model("gpt2", tok)
        >>> m1, tok2, info = la.extend_vocabulary(model, tok, la.sample_corpus("ba"), max_new_tokens=20)
        >>> m2 = la.tokenization.init_new_embeddings(model, tok2, info, "merge")
        >>> m2.get_input_embeddings().num_embeddings == len(tok2)
        True
    """
    check_init(init, seed=seed)
    if init == "merge" and info.method != "bpe_model":
        raise ValueError(_no_merges_message(f"the tokens were added as {info.method or 'added tokens'}"))
    parents = _rows.creating_merges(tokenizer, info.added_tokens) if init == "merge" else {}
    ids = {t: tokenizer.convert_tokens_to_ids(list(m)) for t, m in parents.items()}
    return _resize_and_init(model, len(tokenizer), info.added_tokens, info.new_token_ids, info.pieces, init, seed,
                            {tokenizer.convert_tokens_to_ids(t): i for t, i in ids.items()})


def new_token_peft_kwargs(model, token_ids: Sequence[int] | VocabularyExtension,
                          how: str = "trainable_tokens") -> dict[str, Any]:
    """Recipe keyword arguments that make the new embedding rows trainable (``LoRA``, ``QLoRA``, ``FullFineTuning``).

    ``how="trainable_tokens"`` (default) trains only the given rows and keeps the original rows frozen
    (EEVE): PEFT's ``trainable_token_indices`` under LoRA/QLoRA (a small delta per row; with tied
    embeddings PEFT ties the LM head to it, an untied head gets its own rows), and the same field of
    ``FullFineTuning`` (the other rows get no gradient). ``how="modules_to_save"`` (LoRA/QLoRA) trains
    full copies of the input embedding and the LM head (more memory, also updates old rows; tied
    weights stay tied through ``ensure_weight_tying``).

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


def _load_if_path(model, tokenizer, init: str, new_tokens, model_kwargs=None):
    """(model, tokenizer); a path is resolved (config and tokenizer) first, so a bad ``init`` fails before the
    weights load, which go through the library's one loader (full precision: the new rows are computed from
    the old ones)."""
    from ..modeling import loading

    source = None
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        source = loading.resolve_model(model, tokenizer, model_kwargs=model_kwargs, require_eos=False)
        tokenizer = source.tokenizer
    if tokenizer is None:
        raise ValueError("extend_vocabulary needs the model's tokenizer (tokenizer=...)")
    check_init(init, tokenizer, new_tokens=new_tokens)
    if source is not None:
        model = loading.load_model(source, quantization=None, dtype="float32", adapters=False)
    return model, tokenizer


def check_init(init: str, tokenizer=None, *, new_tokens: Sequence[str] | None = None, seed: int = 0) -> None:
    """Returns None if ``extend_vocabulary(..., init=init)`` can run on ``tokenizer``; else raises ``ValueError``.

    An unknown ``init`` names the known ones; ``"merge"`` on a tokenizer without merges (WordPiece,
    Unigram, or explicit ``new_tokens``, which are added tokens) names the inits that work instead.

    Example::

        >>> import lowres_adapt as la
        >>> la.tokenization.check_init("mean")
        >>> la.tokenization.check_init("covar")
        Traceback (most recent call last):
        ...
        ValueError: unknown init 'covar' (did you mean 'covariance'?); known inits: 'mean', 'merge', 'covariance', 'random'
    """
    from .._utils import did_you_mean

    if init not in INITS:
        raise ValueError(f"unknown init {init!r}{did_you_mean(str(init), INITS)}; known inits: "
                         f"{', '.join(map(repr, INITS))}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if init != "merge" or tokenizer is None:
        return
    kind = type(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)).__name__
    if kind != "BPE":
        raise ValueError(_no_merges_message(f"a {kind} tokenizer has no merges"))
    if new_tokens is not None:
        raise ValueError(_no_merges_message("explicit new_tokens are added as added tokens, which no merge creates"))


def _no_merges_message(why: str) -> str:
    return (f"init='merge' builds each new row from the BPE merge that creates the token, but {why}; "
            f"use one of the inits that need no merges: {', '.join(map(repr, _NO_MERGE_INITS))}")


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
    text = surface(decoder, entry["token"]) or (decoder.decode([entry["token"]]) if decoder else entry["token"])
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


def _resize_and_init(model, n_rows: int, kept: list[str], new_ids: list[int], pieces: dict[str, list[int]],
                     init: str, seed: int, parents: dict[int, list[int]]):
    """``model`` resized in place to at least ``n_rows`` embedding rows, the rows ``new_ids`` initialised by ``init``."""
    old_rows = model.get_input_embeddings().weight.shape[0]
    n_rows = max([old_rows, n_rows, *(i + 1 for i in new_ids)])
    model.resize_token_embeddings(n_rows, mean_resizing=False)
    if new_ids:
        _rows.init_rows(model, new_ids, [pieces[t] for t in kept], old_rows, init, seed=seed,
                        parents={i: tuple(p) for i, p in parents.items()})
    return model


def _check_fast(tokenizer, learning: bool = True) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} has no `tokenizers` backend; load the fast tokenizer "
                         "(AutoTokenizer.from_pretrained(..., use_fast=True))")
    kind = type(backend.model).__name__
    if learning and kind not in ("BPE", "Unigram"):  # explicit new_tokens are added tokens: any model takes them
        raise ValueError(f"learning new tokens supports BPE and Unigram tokenizers, got a {kind} model "
                         "(causal LMs almost always use BPE); pass explicit new_tokens=[...] to add tokens to it")


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

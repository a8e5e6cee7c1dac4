"""The added-token path of vocabulary extension: candidates as surface strings, added as ``AddedToken``.

Used for Unigram tokenizers and for an explicit ``new_tokens=[...]`` list (any fast tokenizer). An added
token is matched on the raw text before pre-tokenization, so each is checked to round-trip on its own.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field


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


def select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency) -> list[TokenCandidate]:
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
        text = surface(decoder, token)
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


def add_as_added_tokens(tokenizer, texts, max_new_tokens, vocab_size, min_frequency, new_tokens):
    """(new tokenizer, kept strings, candidates by string, skipped) for the AddedToken path."""
    from tokenizers import AddedToken

    cands: dict[str, TokenCandidate] = {}
    if new_tokens is None:
        for c in select_surfaces(tokenizer, texts, max_new_tokens, vocab_size, min_frequency):
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


def surface(decoder, token: str) -> str | None:
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



"""Vocabulary extension inside a BPE model: new pieces become regular vocabulary entries with merges.

Why not ``tokenizer.add_tokens``: an added token is cut out of the raw text before normalization and
pre-tokenization, so on a SentencePiece-style tokenizer (``"▁"`` for spaces, a dummy prefix per chunk) every
chunk after an added token gets its own ``"▁"`` prefix and the decoded text gains spaces; an added token also
matches inside any word. A piece added to the BPE model itself (a vocabulary entry plus the merges that
build it) is tokenized and decoded exactly like the base's own pieces, so the round trip cannot change.

Steps (see :func:`extend_bpe`):

1. Train a BPE of the base's kind on the target texts *word by word*, as SentencePiece does: a Metaspace
   pre-tokenizer with ``split=False`` (the Llama-2 / Mistral layout) would otherwise learn pieces that cross
   word boundaries (``"ы▁менән▁"``), which the base's pieces never do.
2. Rank its pieces the base lacks by ``frequency x (base pieces - 1)``.
3. For each, in rank order, find the fewest new entries that make it reachable from the base's own
   segmentation (a binary merge tree over the base pieces whose nodes are all in the vocabulary; the
   missing nodes are added first), and add them while the budget lasts.
4. Write the new entries and their merges after the base's (lowest priority), plus every other split
   of a new piece into two vocabulary entries, as transformers' SentencePiece and tiktoken converters do.
"""

from __future__ import annotations

import json
import re
from collections import Counter

# Byte-fallback pieces: the decoder turns them into raw bytes, so no new piece may look like one.
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>\Z")
_WORD_SPLIT = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True}


def is_bpe(tokenizer) -> bool:
    return type(tokenizer.backend_tokenizer.model).__name__ == "BPE"


def _metaspace_style(spec: dict) -> bool:
    """True when the model sees spaces as "▁" (Metaspace pre-tokenizer or a Replace(" ", "▁") normalizer)."""
    return "\u2581" in json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")], ensure_ascii=False)


def _split_metaspace(pre: dict | None) -> dict | None:
    if pre is None:
        return None
    if pre.get("type") == "Metaspace":
        return {**pre, "split": True}
    if pre.get("type") == "Sequence":
        return {**pre, "pretokenizers": [_split_metaspace(p) for p in pre["pretokenizers"]]}
    return pre


def train_target(tokenizer, texts: list[str], vocab_size: int):
    """A tokenizer of the base's kind trained on ``texts``, word by word (see the module docstring)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if _metaspace_style(spec):
        pre = _split_metaspace(spec.get("pre_tokenizer"))
        # After the base's own pre-tokenizer (or normalizer) wrote "▁", split before each "▁".
        spec["pre_tokenizer"] = ({"type": "Sequence", "pretokenizers": [pre, _WORD_SPLIT]} if pre else _WORD_SPLIT)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)))
    return tokenizer.train_new_from_iterator(texts, vocab_size=vocab_size)


def _units(model, token: str) -> list[tuple[str, list[int]]] | None:
    """The base's segmentation of ``token`` as (text, ids) units, the byte-fallback bytes of a character grouped."""
    raw = token.encode("utf-8")  # the model's offsets are byte offsets
    units: list[tuple[str, list[int]]] = []
    pending, pending_ids = b"", []
    for t in model.tokenize(token):
        piece = raw[t.offsets[0]:t.offsets[1]]
        if pending or _BYTE_PIECE.match(t.value):
            pending, pending_ids = pending + piece, pending_ids + [t.id]
            try:
                units.append((pending.decode("utf-8"), pending_ids))
            except UnicodeDecodeError:  # the character is not complete yet
                continue
            pending, pending_ids = b"", []
            continue
        try:
            units.append((piece.decode("utf-8"), [t.id]))
        except UnicodeDecodeError:
            return None
    return units if not pending and "".join(u for u, _ in units) == token else None


def _merge_tree(units: list[str], have: set[str], trained: set[str], forbidden: set[str]):
    """(new entries in build order, merges) of the cheapest merge tree over ``units``, or None.

    Cost of a tree: the entries it needs that are not in ``have`` (ties: prefer entries the target
    tokenizer learnt). Interval dynamic programming over the base pieces.
    """
    n = len(units)
    inf = (10**9, 0)
    best: dict[tuple[int, int], tuple[tuple[int, int], int | None]] = {}

    def own(s: str) -> tuple[int, int]:
        if s in forbidden or _BYTE_PIECE.match(s):
            return inf
        return (0, 0) if s in have else (1, 0 if s in trained else 1)

    for i, u in enumerate(units):
        best[i, i] = (own(u) if u not in have else (0, 0), None)
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            base = own("".join(units[i:j + 1]))
            choice = min(range(i, j), key=lambda m: _add(best[i, m][0], best[m + 1, j][0]))
            best[i, j] = (_add(base, _add(best[i, choice][0], best[choice + 1, j][0])), choice)
    if best[0, n - 1][0][0] >= inf[0]:
        return None
    new: list[str] = []
    merges: list[tuple[str, str]] = []

    def walk(i: int, j: int) -> str:
        s = "".join(units[i:j + 1])
        m = best[i, j][1]
        if m is not None:
            left, right = walk(i, m), walk(m + 1, j)
            merges.append((left, right))
        if s not in have and s not in new:
            new.append(s)
        return s

    walk(0, n - 1)
    return new, merges


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] + b[0], a[1] + b[1])


def extend_bpe(tokenizer, texts: list[str], max_new_tokens: int, vocab_size: int, min_frequency: int):
    """``(new tokenizer, entries, counts, unreachable)``: the extended copy and the new entries in id order.

    A token that the extended model does not produce even for its own text (an earlier new merge took
    one of its pieces) is dropped and the budget refilled from the next candidates, for a few rounds.
    """
    ranked, counts, ctx = _rank(tokenizer, texts, vocab_size, min_frequency)
    counts["requested"] = max_new_tokens
    excluded: set[str] = set()
    for _ in range(4):
        entries, merges, picked = _select(tokenizer, ranked, ctx, max_new_tokens, excluded)
        new_tok, unreachable = build_extended(tokenizer, entries, merges)
        if not unreachable:
            break
        excluded.update(unreachable)
    counts.update(picked, unreachable_dropped=len(excluded - set(unreachable)))
    return new_tok, entries, counts, unreachable


def _rank(tokenizer, texts: list[str], vocab_size: int, min_frequency: int):
    """Candidates best first as (score, token, frequency, units), the tallies, and what selection needs."""
    trained = train_target(tokenizer, texts, vocab_size)
    emitted: Counter[int] = Counter()
    for enc in trained.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        emitted.update(enc.ids)
    backend = tokenizer.backend_tokenizer
    base_vocab = backend.get_vocab(with_added_tokens=True)
    forbidden = {t.content for t in backend.get_added_tokens_decoder().values()} | set(trained.all_special_tokens)
    trained_vocab = trained.backend_tokenizer.get_vocab(with_added_tokens=False)
    counts = {"trained_vocab": len(trained_vocab), "in_base_vocab": 0, "candidates": 0,
              "below_min_frequency": 0, "no_saving": 0, "unbuildable": 0}
    ranked = []
    for token, tid in trained_vocab.items():
        if token in base_vocab:
            counts["in_base_vocab"] += 1
            continue
        if token in forbidden or _BYTE_PIECE.match(token):
            continue
        counts["candidates"] += 1
        freq = emitted.get(tid, 0)
        if freq < min_frequency:
            counts["below_min_frequency"] += 1
            continue
        units = _units(backend.model, token)
        if units is None:
            counts["unbuildable"] += 1
            continue
        n_pieces = sum(len(ids) for _, ids in units)
        if n_pieces < 2:
            counts["no_saving"] += 1
            continue
        ranked.append((freq * (n_pieces - 1), token, freq, units))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    counts["eligible"] = len(ranked)
    ctx = {"base_vocab": base_vocab, "forbidden": forbidden, "trained_vocab": trained_vocab, "emitted": emitted}
    return ranked, counts, ctx


def _select(tokenizer, ranked, ctx, max_new_tokens: int, excluded: set[str]):
    """Greedy selection in rank order, each candidate with the merge steps it needs, within the budget."""
    model = tokenizer.backend_tokenizer.model
    trained_vocab, emitted = ctx["trained_vocab"], ctx["emitted"]
    forbidden = ctx["forbidden"] | excluded
    have = set(ctx["base_vocab"])
    entries: list[dict] = []
    merges: list[tuple[str, str]] = []
    seen_merges: set[tuple[str, str]] = set()
    picked = {"over_budget": 0, "unbuildable_steps": 0}
    for _score, token, freq, units in ranked:
        left = max_new_tokens - len(entries)
        if left <= 0:
            break
        if token in have or token in excluded:  # already added as a step towards a longer piece
            continue
        tree = _merge_tree([u for u, _ in units], have, set(trained_vocab), forbidden)
        if tree is None:
            picked["unbuildable_steps"] += 1
            continue
        new, tree_merges = tree
        if len(new) > left:
            picked["over_budget"] += 1
            continue
        for t in new:
            t_freq = freq if t == token else emitted.get(trained_vocab.get(t, -1), 0)
            t_pieces = [i for _, ids in (units if t == token else _units(model, t) or []) for i in ids]
            entries.append({"token": t, "frequency": t_freq, "pieces": t_pieces,
                            "score": t_freq * (len(t_pieces) - 1), "needed_by": None if t == token else token})
            have.add(t)
        merges.extend(m for m in tree_merges if m not in seen_merges)
        seen_merges.update(tree_merges)
    picked["added"] = len(entries)
    picked["added_as_merge_steps"] = sum(e["needed_by"] is not None for e in entries)
    return entries, merges, picked


def build_extended(tokenizer, entries: list[dict], merges: list[tuple[str, str]]):
    """A copy of ``tokenizer`` whose BPE model holds ``entries`` (ids from ``len(tokenizer)``) and ``merges``."""
    import copy

    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = spec["model"]["vocab"]
    # Added tokens past the model's vocabulary (GPT-2's <|endoftext|>) get their own id in it: on loading,
    # `tokenizers` gives an added token the model's id for it, else the next free one, which a hole would move.
    for added in spec.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    next_id = len(tokenizer)
    for e in entries:
        vocab[e["token"]] = next_id
        next_id += 1
    old_merges = spec["model"]["merges"]
    as_str = bool(old_merges) and isinstance(old_merges[0], str)
    known = {tuple(m.split(" ", 1)) if as_str else tuple(m) for m in old_merges}
    new_merges: list[tuple[str, str]] = []
    for m in merges:
        if m not in known:
            known.add(m)
            new_merges.append(m)
    # Every other split of a new piece into two entries (lower priority), as the converters write them.
    new_tokens = [e["token"] for e in entries]
    for t in new_tokens:
        for k in range(1, len(t)):
            m = (t[:k], t[k:])
            if m not in known and m[0] in vocab and m[1] in vocab:
                known.add(m)
                new_merges.append(m)
    old_merges.extend(" ".join(m) if as_str else list(m) for m in new_merges)
    new_tok = copy.deepcopy(tokenizer)
    new_tok._tokenizer = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    unreachable = [t for t in new_tokens if [x.value for x in new_tok.backend_tokenizer.model.tokenize(t)] != [t]]
    return new_tok, unreachable

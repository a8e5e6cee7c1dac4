"""The counting engine behind :mod:`lowres_adapt.tokenization.diagnostics`: streams texts through a fast
tokenizer in batches and keeps running sums (words, tokens, byte pieces, letters, round trips).

Per batch there is one Rust encode call; everything else is NumPy over the batch's characters, bytes
and tokens, so the cost per token stays small next to the encoding itself. Token spans come from the
bytes each piece spells when the tokenizer's pieces spell the text (``encode_batch_fast``, no offsets;
the round trip read off the same bytes), else from ``encode_batch`` offsets and a ``decode_batch``.
Word boundaries, token-to-word mapping and letter coverage are computed on one string per batch (the
texts joined by "\\n", which is whitespace, so no word crosses a text boundary), with token spans
shifted into it. The definitions are documented in ``tokenizer_diagnostics``.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any

import numpy as np

from ..languages import LanguageProfile

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def normalize_text(text: Any, normalization: str | None, where: str) -> str:
    """``text`` in Unicode form ``normalization`` (None: unchanged); a non-string raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"{where} must hold strings, got {type(text).__name__}: {text!r:.60}")
    if normalization and not unicodedata.is_normalized(normalization, text):
        return unicodedata.normalize(normalization, text)
    return text


def iter_batches(texts: Iterable[str], normalization: str | None, batch_size: int, max_chars: int,
                 progress: bool | None, what: str = "texts") -> Iterator[tuple[int, list[str]]]:
    """Yields (index of the batch's first text, normalised texts): at most ``batch_size`` texts and
    about ``max_chars`` characters each, with a tqdm bar (``progress=None``: only on a terminal)."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{what} must be an iterable of strings (documents), not one {type(texts).__name__}; "
                         "wrap a single text in a list: [text]")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(texts) if isinstance(texts, Sized) else None, unit="text", desc="diagnosing tokenizer",
               disable=None if progress is None else not progress)
    start, batch, chars = 0, [], 0
    try:
        for text in texts:
            text = normalize_text(text, normalization, what)
            batch.append(text)
            chars += len(text)
            if len(batch) >= batch_size or chars >= max_chars:
                yield start, batch
                bar.update(len(batch))
                start, batch, chars = start + len(batch), [], 0
        if batch:
            yield start, batch
            bar.update(len(batch))
    finally:
        bar.close()


@functools.lru_cache(maxsize=1)
def _whitespace_table() -> np.ndarray:
    """Boolean look-up by code point: True for the characters str.split() splits on (all are < U+3001)."""
    table = np.zeros(0x3002, dtype=bool)  # the last slot stands for every code point above U+3000
    for cp in range(0x3001):
        table[cp] = chr(cp).isspace()
    return table


@functools.lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2): printable character -> the byte it stands for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {chr(b): b for b in printable}, 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _decoder_strips(decoder: dict[str, Any]) -> int | None:
    """How many leading spaces the decoder strips from the joined piece bytes, for the decoders whose
    output is exactly that (so the round trip can be read off the piece bytes without decoding):
    ``ByteLevel`` (0); ``Replace("▁", " "), ByteFallback, Fuse`` (0) with ``Strip(" ", 1, 0)`` (1).
    None for any other decoder: the round trip is then checked by decoding."""
    if decoder.get("type") == "ByteLevel":
        return 0
    steps = decoder.get("decoders") if decoder.get("type") == "Sequence" else None
    head = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}]
    if steps == head:
        return 0
    if steps == [*head, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]:
        return 1
    return None


class TokenizerFacts:
    """A fast tokenizer's Rust backend plus the per-vocabulary facts looked up by token id."""

    def __init__(self, backend: Any, name: str):
        self.backend = backend
        self.name = name
        vocab = backend.get_vocab(with_added_tokens=True)
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        size = max(vocab.values(), default=-1) + 1
        ids = sorted(vocab.values())
        pieces = [""] * size
        for piece, i in vocab.items():
            pieces[i] = piece
        decoded = [""] * size
        for i, text in zip(ids, backend.decode_batch([[i] for i in ids], skip_special_tokens=False), strict=True):
            decoded[i] = text
        self.special = np.zeros(size, dtype=bool)
        for i, added in backend.get_added_tokens_decoder().items():
            if added.special and i < size:
                self.special[i] = True
        # A byte piece: a SentencePiece <0xNN> token, or a token whose own bytes are not whole UTF-8
        # characters (decoding it alone gives U+FFFD, the replacement character, which its text lacks).
        self.byte_piece = np.fromiter(
            (bool(_BYTE_TOKEN.fullmatch(p)) or ("\ufffd" in d and "\ufffd" not in p)
             for p, d in zip(pieces, decoded, strict=True)), dtype=bool, count=size)
        self.pieces = pieces
        self.text = [unicodedata.normalize("NFC", d) for d in decoded]  # what each token id decodes to
        spec = json.loads(backend.to_str())  # the pipeline, parsed once for the model and decoder facts
        decoder = spec.get("decoder") or {}
        self.unk_id = self._unk_id(spec.get("model") or {})
        self.added = np.zeros(size, dtype=bool)  # added tokens (special or not): decoded apart by some versions
        self.added[[i for i in backend.get_added_tokens_decoder() if i < size]] = True
        self.piece_bytes = self._piece_bytes(pieces, decoded, decoder)
        self.decoder_strips = _decoder_strips(decoder) if self.piece_bytes is not None else None

    def _piece_bytes(self, pieces: list[str], decoded: list[str], decoder: dict[str, Any]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The bytes of text each token id spells, as (all bytes, start, length), for the two decoders
        whose tokens spell their text by concatenation; None for any other decoder (offsets are used).

        - ``ByteLevel`` (GPT-2, Llama 3, Qwen, DeepSeek): each character of the piece stands for one byte;
          a piece with a character outside that alphabet (an added token) spells its own UTF-8.
        - SentencePiece style (``Metaspace``, or ``Replace("▁", " ")`` with ``ByteFallback``: Llama 2,
          Mistral): "▁" spells a space and ``<0xNN>`` the byte NN.

        The table is kept only when every non-special token, decoded alone by the tokenizer, gives the
        text of its bytes (less the one leading space a SentencePiece decoder strips).
        """
        kinds = {d.get("type") for d in decoder.get("decoders", [decoder]) if isinstance(d, dict)}
        raw: list[bytes] = []
        if "ByteLevel" in kinds:
            char_byte = _byte_level_decoder()
            for piece in pieces:
                try:
                    raw.append(bytes(char_byte[c] for c in piece))
                except KeyError:
                    raw.append(piece.encode("utf-8"))
        elif "Metaspace" in kinds or {"Replace", "ByteFallback"} <= kinds:
            for piece in pieces:
                raw.append(bytes([int(piece[3:5], 16)]) if _BYTE_TOKEN.fullmatch(piece)
                           else piece.replace("\u2581", " ").encode("utf-8"))
        else:
            return None
        for b, d, special in zip(raw, decoded, self.special, strict=True):
            if not special and d != b.decode("utf-8", "replace") and not (
                    b.startswith(b" ") and d == b[1:].decode("utf-8", "replace")):
                return None
        length = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
        start = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
        return np.frombuffer(b"".join(raw), dtype=np.uint8), start, length

    def _unk_id(self, model: dict[str, Any]) -> int | None:
        # The *model's* unknown token: GPT-2 style tokenizers often set unk_token = eos in their config,
        # but their byte-level BPE can never produce it, so the config's unk_token_id would be wrong here.
        if model.get("unk_token") is not None:
            return self.backend.token_to_id(model["unk_token"])
        if model.get("unk_id") is not None:  # Unigram
            return int(model["unk_id"])
        return None

    @classmethod
    def load(cls, obj: Any, name: str | None, min_vocab_size: int = 0) -> TokenizerFacts:
        """From a fast transformers tokenizer, a ``tokenizers.Tokenizer``, a folder / hub id
        (``AutoTokenizer``) or a tokenizer file (``la.load_tokenizer``); a vocabulary
        of fewer than ``min_vocab_size`` entries raises ``ValueError`` (too small to be a real tokenizer)."""
        from tokenizers import Tokenizer

        from ..data import resolve_sample

        if isinstance(obj, str) and resolve_sample(obj) != obj:  # "sample:mini-gpt2-ru": named by its spec
            name, obj = name or obj, resolve_sample(obj)
        if isinstance(obj, (str, os.PathLike)) and os.path.isfile(obj):
            # a tokenizer file (tokenizer.json, SentencePiece .model, .tiktoken, tekken): converted and checked
            from .loading import load_tokenizer

            name = name or str(obj)
            obj = load_tokenizer(obj)
        elif isinstance(obj, (str, os.PathLike)):
            from transformers import AutoTokenizer

            name = name or str(obj)
            obj = AutoTokenizer.from_pretrained(str(obj))
        if isinstance(obj, Tokenizer):
            backend = obj
        elif getattr(obj, "backend_tokenizer", None) is not None:
            backend = obj.backend_tokenizer
            name = name or getattr(obj, "name_or_path", "") or ""
        else:
            raise ValueError(
                f"diagnose_tokenizer needs a fast (Rust) tokenizer for character offsets, got "
                f"{type(obj).__name__}; load it with AutoTokenizer.from_pretrained(path, use_fast=True), "
                "or pass a tokenizers.Tokenizer")
        size = backend.get_vocab_size(with_added_tokens=True)
        if size < min_vocab_size:
            raise ValueError(
                f"tokenizer {name or type(obj).__name__!r} has {size} vocabulary entries, fewer than "
                f"min_vocab_size={min_vocab_size}: too small to be a real tokenizer, so its numbers would mean "
                "nothing (on transformers 5, LlamaTokenizer(Fast)(vocab_file='tokenizer.model') silently gives 3). "
                "Load a published tokenizer file with la.load_tokenizer(path); for a deliberately tiny tokenizer "
                "pass min_vocab_size=0")
        if backend.truncation is not None or backend.padding is not None:
            # Work on a copy without truncation/padding: diagnostics must see every token, and the
            # caller's tokenizer must stay as it was.
            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        return cls(backend, name or type(obj).__name__)


class DiagnosticCounts:
    """Running sums of the diagnostics of one tokenizer on one language; ``update`` takes a batch."""

    def __init__(self, tok: TokenizerFacts, language: LanguageProfile, max_examples: int):
        self.tok = tok
        self.max_examples = max_examples
        self.letters = list(language.special_letters)
        # Each letter's written forms (lower, upper, title case when a single character): counted per form,
        # reported per letter.
        self.forms: list[str] = []
        self.form_letter: list[int] = []
        for j, c in enumerate(self.letters):
            for form in dict.fromkeys((c, c.upper(), c.title())):
                if len(form) == 1:
                    self.forms.append(form)
                    self.form_letter.append(j)
        self.form_lut = np.full(max((ord(f) for f in self.forms), default=-1) + 2, -1, dtype=np.int64)
        for f, form in enumerate(self.forms):
            self.form_lut[ord(form)] = f
        # contains[id, f]: token id decodes to text holding form f's letter, in either case (a lower-casing
        # normalizer keeps the letter: the round trip reports the lost case)
        lower = [t.lower() for t in tok.text]
        self.contains = np.zeros((len(lower), len(self.forms)), dtype=bool)
        exact = np.zeros_like(self.contains)
        for f, form in enumerate(self.forms):
            letter = self.letters[self.form_letter[f]]
            self.contains[:, f] = np.fromiter((letter in t for t in lower), dtype=bool, count=len(lower))
            exact[:, f] = np.fromiter((form in t for t in tok.text), dtype=bool, count=len(lower))
        self.form_in_vocab = (exact & ~tok.special[:, None]).any(axis=0)
        self.letter_in_vocab = [(self.contains[:, f] & ~tok.special).any() for f in range(len(self.forms))]
        self.piece_spans = tok.piece_bytes is not None  # False: spans from the tokenizer's offsets
        self.spelled_batches = self.unspelled_batches = 0
        self.n_texts = self.n_words = self.n_tokens = self.n_chars = self.n_bytes = 0
        self.word_tokens = self.continued = self.n_unk = self.n_byte = self.failures = 0
        self.form_count = np.zeros(len(self.forms), dtype=np.int64)
        self.form_whole = np.zeros(len(self.forms), dtype=np.int64)
        self.mismatches: list[dict[str, Any]] = []

    def update(self, batch: list[str], start: int) -> None:
        """Adds the counts of ``batch`` (texts ``start``, ``start + 1``, ... of the corpus)."""
        joined = "\n".join(batch)
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")  # code point of each character
        utf8 = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
        text_lens = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        spans = self._spans_from_pieces(batch, text_lens, cp, utf8) if self.piece_spans else None
        if self.piece_spans:
            # A batch the pieces do not spell is redone with offsets. When such batches outnumber the
            # spelled ones (a normalizer that lower-cases everything), stop trying the pieces.
            self.spelled_batches += spans is not None
            self.unspelled_batches += spans is None
            self.piece_spans = self.unspelled_batches <= self.spelled_batches
        if spans is None:
            spans = self._spans_from_offsets(batch, text_lens)
        id_lists, ids, s, e, lost = spans  # token ids, their character spans in `joined`, lost round trips
        total = ids.size
        n = cp.size
        self._round_trip(batch, id_lists, start, lost, ids)

        self.n_texts += len(batch)
        self.n_tokens += total
        self.n_chars += int(text_lens.sum())
        self.n_bytes += utf8.size - (len(batch) - 1)
        self.n_byte += int(self.tok.byte_piece[ids].sum())
        if self.tok.unk_id is not None:
            self.n_unk += int((ids == self.tok.unk_id).sum())

        # Words: maximal runs of non-whitespace characters; started[c] = words begun at or before c.
        ws_table = _whitespace_table()
        nonws = ~ws_table[np.minimum(cp, ws_table.size - 1)]
        word_start = nonws.copy()
        word_start[1:] &= ~nonws[:-1]
        started = np.cumsum(word_start)
        n_words = int(started[-1]) if n else 0
        self.n_words += n_words
        if self.n_tokens == 0 and self.n_words:
            first = next(i for i, t in enumerate(batch) if t.split())
            raise ValueError(
                f"tokenizer {self.tok.name!r} cut {self.n_texts} texts holding {self.n_words} words into no tokens "
                f"at all (text {start + first}: {batch[first][:40]!r}): it is not a working tokenizer (on transformers "
                "5, LlamaTokenizer(Fast)(vocab_file='tokenizer.model') silently gives one with 3 entries that "
                "encodes nothing). Load the tokenizer file with la.load_tokenizer(path)")
        span = e > s  # tokens with an empty span (special tokens) cover no character
        sv, ev, iv = s[span], e[span], ids[span]
        if n_words and sv.size:
            # a token [s, e) touches the words from the one at s (or, at whitespace, the next one to
            # begin) to the last one begun at or before e - 1; none when that range is empty
            w_first, w_last = started[sv] - nonws[sv], started[ev - 1] - 1
            inside = w_first <= w_last
            w_first, w_last = w_first[inside], w_last[inside]
            # tokens per word: +1 on every word from w_first to w_last (a difference array)
            per_word = np.cumsum(np.bincount(w_first, minlength=n_words + 1)
                                 - np.bincount(w_last + 1, minlength=n_words + 1))[:n_words]
            self.word_tokens += int(per_word.sum())
            self.continued += int((per_word >= 2).sum())

        if self.forms:
            lut = self.form_lut
            form = lut[np.minimum(cp, lut.size - 1)]
            where = np.flatnonzero(form >= 0)
            if where.size:
                which = form[where]
                self.form_count += np.bincount(which, minlength=len(self.forms))
                # whole: exactly one token covers the character and that token's text holds the letter
                if sv.size > 1 and not (sv[1:] >= sv[:-1]).all():
                    order = np.argsort(sv, kind="stable")
                    sv, ev, iv = sv[order], ev[order], iv[order]
                ends = ev if ev.size < 2 or (ev[1:] >= ev[:-1]).all() else np.sort(ev)
                k = np.searchsorted(sv, where, side="right")  # tokens starting at or before the character
                cover = k - np.searchsorted(ends, where, side="right")  # ... less those ended by then
                k -= 1  # the last token starting at or before it
                one = (cover == 1) & (k >= 0)
                k, at, which1 = k[one], where[one], which[one]
                whole = (ev[k] > at) & self.contains[iv[k], which1]
                self.form_whole += np.bincount(which1[whole], minlength=len(self.forms))

    def _round_trip(self, batch: list[str], id_lists: list[list[int]], start: int, lost: np.ndarray | None,
                    ids: np.ndarray) -> None:
        """Counts the texts whose decoding differs from them. ``lost``: which texts those are, when already
        known from the piece bytes (then only they are decoded, for the examples); None: decode all.

        A text that encodes to special tokens is also decoded with ``skip_special_tokens=True`` (as
        generation output is) and must then give the text less the special tokens it spells literally
        (an ``<|endoftext|>`` written in it): a token registered as special that stands for ordinary
        text (a byte piece, a letter) is dropped by that decoding, and the text loses letters."""
        backend = self.tok.backend
        if lost is None:
            decoded = backend.decode_batch(id_lists, skip_special_tokens=False)
            failed = [i for i, (text, back) in enumerate(zip(batch, decoded, strict=True)) if text != back]
        else:
            failed = np.flatnonzero(lost).tolist()
        examples: dict[int, tuple[str, bool]] = {}  # text -> (decoded, special tokens skipped)
        if self.tok.special[ids].any():
            for i, id_list in enumerate(id_lists):
                special = [t for t in id_list if self.tok.special[t]]
                if not special or i in failed:
                    continue
                want = batch[i]
                for t in dict.fromkeys(special):
                    want = want.replace(self.tok.pieces[t], "")
                back = backend.decode(id_list, skip_special_tokens=True)
                if back != want:
                    failed.append(i)
                    examples[i] = (back, True)
            failed.sort()
        self.failures += len(failed)
        for i in failed[:max(self.max_examples - len(self.mismatches), 0)]:
            if i not in examples:
                back = decoded[i] if lost is None else backend.decode(id_lists[i], skip_special_tokens=False)
                examples[i] = (back, False)
            self.mismatches.append(_mismatch(start + i, batch[i], *examples[i]))

    def _spans_from_offsets(self, batch: list[str], text_lens: np.ndarray
                            ) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray, None]:
        """Token ids and character spans in the joined batch, from the tokenizer's offsets."""
        enc = self.tok.backend.encode_batch(batch, add_special_tokens=False)
        id_lists, lens, ids = _flat_ids(enc)
        flat = itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in enc))
        offsets = np.fromiter(flat, dtype=np.int64, count=2 * ids.size).reshape(ids.size, 2)
        shift = np.repeat(np.concatenate(([0], np.cumsum(text_lens + 1)[:-1])), lens)
        return id_lists, ids, offsets[:, 0] + shift, offsets[:, 1] + shift, None

    def _spans_from_pieces(self, batch: list[str], text_lens: np.ndarray, cp: np.ndarray, utf8: np.ndarray
                           ) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """Token ids from one ``encode_batch_fast`` call (no offsets) and character spans from the bytes
        the tokens spell (``TokenizerFacts.piece_bytes``), which must be each text's bytes, after at most
        one added leading space (SentencePiece's "▁" prefix, ByteLevel's add_prefix_space). A token's span
        runs from the character holding its first byte to the one holding its last; the added space
        belongs to the first character, as in the tokenizer's own offsets. None when some text is not
        spelled so (a normalizer changed it, a token stands for unknown text)."""
        table, piece_start, piece_len = self.tok.piece_bytes
        enc = self.tok.backend.encode_batch_fast(batch, add_special_tokens=False)
        id_lists, lens, ids = _flat_ids(enc)
        blen = piece_len[ids]
        # where each text starts in `joined` (in bytes) and how many bytes it has
        char_at = np.concatenate(([0], np.cumsum(1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000))))
        text_char_start = np.concatenate(([0], np.cumsum(text_lens + 1)[:-1]))
        text_byte_start = char_at[text_char_start]
        text_bytes = char_at[text_char_start + text_lens] - text_byte_start
        # bytes each text's tokens spell, and the added leading space (0 or 1 byte)
        before = np.concatenate(([0], np.cumsum(blen)))  # bytes spelled before each token (+ the total)
        first_token = np.cumsum(lens) - lens
        lead = before[first_token + lens] - before[first_token] - text_bytes
        if (blen == 0).any() or not np.isin(lead, (0, 1)).all() or (lead[text_bytes == 0] != 0).any() or not (
                table[piece_start[ids[first_token[lead == 1]]]] == 0x20).all():
            return None
        # all bytes the tokens spell, in order, must be the texts' bytes with the added spaces in front
        # (and without the "\n" that joins the texts)
        n_spelled = int(before[-1])
        spelled = table[np.repeat(piece_start[ids] - before[:-1], blen) + np.arange(n_spelled, dtype=np.int64)]
        spelled = np.delete(spelled, before[first_token[lead == 1]])
        if not np.array_equal(spelled, np.delete(utf8, text_byte_start[1:] - 1)):
            return None
        # each token's first byte, counted from its text's first byte (-1: the added space)
        local = before[:-1] - np.repeat(before[first_token] + lead, lens)
        char_of_byte = np.cumsum((utf8 & 0xC0) != 0x80) - 1
        shift = np.repeat(text_byte_start, lens)
        s = char_of_byte[np.maximum(local, 0) + shift]
        e = char_of_byte[np.maximum(local + blen - 1, 0) + shift] + 1
        strips = self.tok.decoder_strips
        if strips is None or self.tok.added[ids].any():
            return id_lists, ids, s, e, None  # decode to check the round trip
        # The decoder gives the spelled bytes less `strips` leading spaces: the text itself exactly when
        # the added space is what it strips (and it strips no space of the text's own).
        own_space = (text_bytes > 0) & (utf8[np.minimum(text_byte_start, max(utf8.size - 1, 0))] == 0x20)
        return id_lists, ids, s, e, (lead == 1) if strips == 0 else (lead == 0) & own_space

    def letter_coverage(self) -> dict[str, dict[str, Any]]:
        """{letter: {"count", "whole_share", "in_vocab", "forms": {form: {"count", "whole_share", "in_vocab"}}}}."""
        out = {}
        for j, c in enumerate(self.letters):
            fs = [f for f in range(len(self.forms)) if self.form_letter[f] == j]
            count = int(self.form_count[fs].sum())
            whole = int(self.form_whole[fs].sum())
            out[c] = {
                "count": count, "whole_share": whole / count if count else None,
                "in_vocab": bool(self.letter_in_vocab[fs[0]]) if fs else False,
                "forms": {self.forms[f]: {"count": int(self.form_count[f]),
                                          "whole_share": (float(self.form_whole[f] / self.form_count[f])
                                                          if self.form_count[f] else None),
                                          "in_vocab": bool(self.form_in_vocab[f])} for f in fs},
            }
        return out


def _flat_ids(enc: list[Any]) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """A batch's encodings as (id lists, tokens per text, all ids in one array)."""
    id_lists = [e.ids for e in enc]
    lens = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lens.sum()))
    return id_lists, lens, ids


def _mismatch(index: int, text: str, back: str, skipped: bool = False, context: int = 20) -> dict[str, Any]:
    """Where ``back`` first differs from ``text``, with ``context`` characters each side; ``skipped``: the
    decoding skipped special tokens (the key is present only then)."""
    pos = next((i for i, (a, b) in enumerate(zip(text, back, strict=False)) if a != b), min(len(text), len(back)))
    lo = max(pos - context, 0)
    out = {"index": index, "position": pos, "original": text[lo:pos + context], "decoded": back[lo:pos + context]}
    if skipped:
        out["skip_special_tokens"] = True
    return out


def parity(toks: list[TokenizerFacts], parallel: Any, normalization: str | None, batch_size: int
           ) -> tuple[list[Any], Any]:
    """Per tokenizer Σ target tokens / Σ reference tokens, and the number of pairs; for a dict of pair
    lists, a dict of each (one entry per reference); ``parallel=None`` gives Nones."""
    if parallel is None:
        return [None] * len(toks), None
    if isinstance(parallel, Mapping):
        if not parallel:
            raise ValueError("parallel is an empty dict; give {reference_name: [(target, reference), ...]}")
        per = {label: parity(toks, pairs, normalization, batch_size) for label, pairs in parallel.items()}
        return ([{label: per[label][0][i] for label in per} for i in range(len(toks))],
                {label: per[label][1] for label in per})
    if isinstance(parallel, (str, bytes)):
        raise ValueError("parallel must be a list of (target_sentence, reference_sentence) pairs, got a string")
    sums = np.zeros((len(toks), 2), dtype=np.int64)
    n_pairs = 0
    pairs = iter(parallel)
    for chunk in iter(lambda: list(itertools.islice(pairs, batch_size)), []):
        sides: tuple[list[str], list[str]] = ([], [])
        for k, pair in enumerate(chunk):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"parallel[{n_pairs + k}] must be a (target_sentence, reference_sentence) pair, "
                                 f"got {pair!r:.80}")
            for side, text in zip(sides, pair, strict=True):
                side.append(normalize_text(text, normalization, "parallel pairs"))
        n_pairs += len(chunk)
        for t, tok in enumerate(toks):
            for col, side in enumerate(sides):
                sums[t, col] += sum(len(x) for x in tok.backend.encode_batch(side, add_special_tokens=False))
    if n_pairs == 0 or (sums[:, 1] == 0).any():
        raise ValueError(f"parity needs parallel pairs whose reference sentences are not empty, got {n_pairs} pairs")
    return [float(a / b) for a, b in sums], n_pairs

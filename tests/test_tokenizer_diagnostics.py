"""Tokenizer diagnostics, checked against numbers counted by hand and against a slow brute-force count.

Tokenizers are trained in-process on text without Bashkir letters (so those letters fall back to bytes
or to [UNK]), on a little Bashkir (so they do not), and one gets a lossy normalizer.
"""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import re
import unicodedata

import pytest

import lowres_adapt as la
from lowres_adapt.tokenization.diagnostics import DiagnosticThresholds, TokenizerReport

EN_TRAIN = ["the cat sat on the mat", "cat sat on a mat", "a cat and a dog", "the dog sat"] * 25
BA_TRAIN = ["һәм ҡар яуа", "Һәм ҡыш етте", "йыр һәм бейеү"] * 20
MIXED = "Һә cats  dog\nмир, ә!"  # 20 characters, 26 UTF-8 bytes, 5 words
TINY = {"min_vocab_size": 0}  # for the 32-entry WordPiece


@pytest.fixture(scope="module")
def bbpe():
    """Byte-level BPE (GPT-2 style) that has seen only ASCII: every Cyrillic letter is 2 byte tokens."""
    return la.train_tokenizer(EN_TRAIN, vocab_size=300, kind="byte_bpe")


@pytest.fixture(scope="module")
def spbpe():
    """SentencePiece-style BPE with <0xNN> byte fallback, ASCII only."""
    return la.train_tokenizer(EN_TRAIN, vocab_size=300, kind="bpe_byte_fallback")


@pytest.fixture(scope="module")
def wordpiece():
    """WordPiece: an unseen character makes the whole word [UNK]. It has 32 entries, below the 100 the
    diagnostics take for a real tokenizer, so calls with it pass min_vocab_size=0 (TINY)."""
    return la.train_tokenizer(EN_TRAIN, vocab_size=200, kind="wordpiece")


@pytest.fixture(scope="module")
def ba_bpe():
    """Byte-level BPE trained on a little Bashkir: һ, ә, ҡ ... have merges, ҫ has none."""
    return la.train_tokenizer(BA_TRAIN, vocab_size=300, kind="byte_bpe")


@pytest.fixture(scope="module")
def lossy():
    """The Bashkir byte-level BPE behind an NFKD + StripAccents + Lowercase normalizer (built here)."""
    from tokenizers import normalizers

    tok = la.train_tokenizer(BA_TRAIN, vocab_size=300, kind="byte_bpe")
    tok.backend_tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    return tok


def tokens(tok, text):
    enc = tok.backend_tokenizer.encode(text, add_special_tokens=False)
    return enc.tokens, enc.offsets


def core(coverage: dict) -> dict:
    """A letter's entry without the per-form breakdown."""
    return {k: v for k, v in coverage.items() if k != "forms"}


def diag(tok, texts, **kw):
    kw.setdefault("progress", False)
    return la.diagnose_tokenizer(tok, texts, **kw)


# ------------------------------------------------------------------------------------ hand-counted cases
def test_byte_level_bpe_hand_counted(bbpe):
    # precondition: the tokenization the hand count below is based on
    assert tokens(bbpe, MIXED)[0] == ["Ò", "º", "Ó", "Ļ", "Ġcat", "s", "Ġ", "Ġdog", "Ċ", "Ð", "¼", "Ð", "¸",
                                      "Ñ", "Ģ", ",", "Ġ", "Ó", "Ļ", "!"]
    r = diag(bbpe, [MIXED])
    # words: Һә | cats | dog | мир, | ә!  -> tokens per word 4 + 2 + 1 + 7 + 3 = 17 (the lone "Ġ" and
    # "Ċ" tokens are whitespace and belong to no word)
    assert (r.n_texts, r.n_words, r.n_tokens, r.n_chars, r.n_bytes) == (1, 5, 20, 20, 26)
    assert r.fertility == pytest.approx(17 / 5)
    assert r.continued_word_rate == pytest.approx(4 / 5)
    assert r.chars_per_token == pytest.approx(1.0)
    assert r.bytes_per_token == pytest.approx(26 / 20)
    # byte pieces: 4 for Һә, 6 for мир, 2 for ә
    assert r.n_byte_fallback_tokens == 12 and r.byte_fallback_rate == pytest.approx(0.6)
    assert r.n_unk_tokens == 0 and r.unk_rate == 0.0  # byte-level BPE has no unknown token
    assert r.roundtrip_ok and r.n_roundtrip_failures == 0 and r.roundtrip_mismatches == []
    assert core(r.letter_coverage["һ"]) == {"count": 1, "whole_share": 0.0, "in_vocab": False}  # the capital Һ
    assert core(r.letter_coverage["ә"]) == {"count": 2, "whole_share": 0.0, "in_vocab": False}
    assert core(r.letter_coverage["ҡ"]) == {"count": 0, "whole_share": None, "in_vocab": False}
    assert r.letter_coverage["һ"]["forms"] == {"һ": {"count": 0, "whole_share": None, "in_vocab": False},
                                               "Һ": {"count": 1, "whole_share": 0.0, "in_vocab": False}}
    assert list(r.letter_coverage) == list("әөүғҡңҙҫһ")


def test_sentencepiece_byte_fallback_hand_counted(spbpe):
    toks = tokens(spbpe, MIXED)[0]
    assert toks == ["<0xD2>", "<0xBA>", "<0xD3>", "<0x99>", "▁cat", "s", "▁", "▁dog", "<0x0A>", "<0xD0>", "<0xBC>",
                    "<0xD0>", "<0xB8>", "<0xD1>", "<0x80>", "<0x2C>", "▁", "<0xD3>", "<0x99>", "<0x21>"]
    r = diag(spbpe, [MIXED])
    assert (r.n_words, r.n_tokens) == (5, 20)
    assert r.fertility == pytest.approx(17 / 5) and r.continued_word_rate == pytest.approx(4 / 5)
    # every <0xNN> token is byte fallback, ASCII ones ("\n", ",", "!") included: 4 + 1 + 6 + 1 + 2 + 1
    assert r.n_byte_fallback_tokens == sum(bool(re.fullmatch(r"<0x..>", t)) for t in toks) == 15
    assert r.byte_fallback_rate == pytest.approx(0.75)
    assert r.unk_rate == 0.0 and r.roundtrip_ok
    assert r.letter_coverage["ә"]["count"] == 2 and r.letter_coverage["ә"]["whole_share"] == 0.0


def test_wordpiece_unk_hand_counted(wordpiece):
    assert tokens(wordpiece, MIXED) == (["[UNK]", "[UNK]", "dog", "[UNK]", "[UNK]"],
                                        [(0, 2), (3, 7), (9, 12), (13, 17), (18, 20)])
    r = diag(wordpiece, [MIXED, "cat sat"], **TINY)
    assert (r.n_words, r.n_tokens, r.n_unk_tokens) == (7, 7, 4)
    assert r.fertility == 1.0 and r.continued_word_rate == 0.0
    assert r.unk_rate == pytest.approx(4 / 7) and r.byte_fallback_rate == 0.0
    # [UNK] covers the letter but does not hold it
    assert core(r.letter_coverage["ә"]) == {"count": 2, "whole_share": 0.0, "in_vocab": False}
    assert not r.roundtrip_ok and r.n_roundtrip_failures == 1
    assert r.roundtrip_mismatches == [{"index": 0, "position": 0, "original": "Һә cats  dog\nмир, ә!",
                                       "decoded": "[UNK] [UNK] dog [UNK"}]  # 20 characters each side


def test_bashkir_trained_bpe_keeps_letters_whole(ba_bpe):
    # "ҫ" was never seen: its first byte is merged with the preceding space ("ĠÒ"), the second stands alone
    assert tokens(ba_bpe, "Һәм ҫ") == (["ÒºÓĻÐ¼", "ĠÒ", "«"], [(0, 3), (3, 5), (4, 5)])
    r = diag(ba_bpe, ["Һәм ҫ"])
    assert (r.n_words, r.n_tokens) == (2, 3)
    assert r.fertility == pytest.approx(3 / 2) and r.continued_word_rate == pytest.approx(1 / 2)
    assert r.n_byte_fallback_tokens == 2  # "ĠÒ" (space + half a letter) and "«"
    cov = r.letter_coverage
    assert core(cov["һ"]) == {"count": 1, "whole_share": 1.0, "in_vocab": True}
    assert core(cov["ә"]) == {"count": 1, "whole_share": 1.0, "in_vocab": True}
    assert core(cov["ҫ"]) == {"count": 1, "whole_share": 0.0, "in_vocab": False}
    assert core(cov["ҡ"]) == {"count": 0, "whole_share": None, "in_vocab": True}
    assert cov["ҡ"]["forms"]["Ҡ"] == {"count": 0, "whole_share": None, "in_vocab": False}  # never seen capital
    assert cov["һ"]["forms"]["Һ"] == {"count": 1, "whole_share": 1.0, "in_vocab": True}


def test_lossy_normalizer_fails_roundtrip(lossy):
    texts = ["һәм ҡар", "Һәм ҡар", "йыр һәм"]
    assert tokens(lossy, "Һәм ҡар") == tokens(lossy, "һәм ҡар")  # lower-cased before tokenizing
    r = diag(lossy, texts)
    assert not r.roundtrip_ok and r.n_roundtrip_failures == 2  # the capital Һ, and й -> и (accent stripped)
    assert r.roundtrip_mismatches == [
        {"index": 1, "position": 0, "original": "Һәм ҡар", "decoded": "һәм ҡар"},
        {"index": 2, "position": 0, "original": "йыр һәм", "decoded": "иыр һәм"},
    ]
    # the letters survive (lower-cased, which whole_share ignores: round trip reports the case loss)
    assert core(r.letter_coverage["һ"]) == {"count": 3, "whole_share": 1.0, "in_vocab": True}
    assert any(w.startswith("roundtrip failed") and "2 of 3 texts" in w for w in r.warnings)


# ------------------------------------------------------------------------------------ brute force
BYTE_LEVEL_ALPHABET = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                       + list(range(ord("®"), ord("ÿ") + 1)))


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character -> byte map, rebuilt here from its definition."""
    bs, cs, n = list(BYTE_LEVEL_ALPHABET), list(BYTE_LEVEL_ALPHABET), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def brute_force(tok, texts, letters, byte_level):
    """Every metric by plain loops over words, tokens and characters (no offsets arithmetic shared)."""
    bd = _byte_decoder()
    out = dict(words=0, tokens=0, word_tokens=0, continued=0, byte=0, unk=0, fail=0, chars=0, bytes=0)
    count, whole = dict.fromkeys(letters, 0), dict.fromkeys(letters, 0)
    form_count, form_whole = {}, {}
    unk = None if tok.unk_token == tok.eos_token else tok.unk_token_id  # byte-level BPE: no UNK
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        pieces = tok.convert_ids_to_tokens(ids)
        if byte_level:
            raw = [bytes(bd[c] for c in p) for p in pieces]
            texts_of = []
            for b in raw:
                try:
                    texts_of.append(b.decode("utf-8"))
                except UnicodeDecodeError:
                    texts_of.append(None)
        else:
            texts_of = [None if re.fullmatch(r"<0x..>", p) else tok.decode([i]) for p, i in zip(pieces, ids, strict=True)]
        out["tokens"] += len(ids)
        out["chars"] += len(text)
        out["bytes"] += len(text.encode())
        out["byte"] += sum(t is None for t in texts_of)
        out["unk"] += sum(i == unk for i in ids)
        for m in re.finditer(r"\S+", text):
            n = sum(1 for (s, e) in offs if any(m.start() <= p < m.end() for p in range(s, e)))
            out["words"] += 1
            out["word_tokens"] += n
            out["continued"] += n >= 2
        for pos, ch in enumerate(text):
            if ch.lower() in count:
                count[ch.lower()] += 1
                form_count[ch] = form_count.get(ch, 0) + 1
                cover = [k for k, (s, e) in enumerate(offs) if s <= pos < e]
                if len(cover) == 1 and texts_of[cover[0]] is not None and ch.lower() in texts_of[cover[0]].lower():
                    whole[ch.lower()] += 1
                    form_whole[ch] = form_whole.get(ch, 0) + 1
        out["fail"] += tok.decode(ids, skip_special_tokens=False) != text
    out["count"], out["whole"], out["form_count"], out["form_whole"] = count, whole, form_count, form_whole
    return out


CORPUS = [
    "Башҡортостан Республикаһы — Рәсәй Федерацияһы составындағы республика.",
    "the cat sat on the mat,  and the dog (a big one) sat too!",
    "Һаумыһығыҙ, дуҫтар!\n\nБөгөн ҡар яуа. Ә беҙ өйҙә ултырабыҙ…",
    "   ",
    "",
    "ҠЫШ ЕТТЕ: Ҙур ҡалала таңда ҡар күп. Ғаилә менән ял итәбеҙ.\tҮҙәк урамда ҫыуыҡ.",
    "Привет, мир! Hello 123 — ok.",
]


@pytest.mark.parametrize("which", ["bbpe", "spbpe", "ba_bpe"])
def test_matches_brute_force_in_any_batching(which, request):
    tok = request.getfixturevalue(which)
    letters = la.BASHKIR.special_letters
    bf = brute_force(tok, CORPUS, letters, byte_level=which != "spbpe")
    for kw in ({}, {"batch_size": 2}, {"batch_size": 3, "max_batch_chars": 30}):
        r = diag(tok, iter(CORPUS), **kw)  # a generator: streamed
        assert (r.n_texts, r.n_words, r.n_tokens, r.n_chars, r.n_bytes) == (
            len(CORPUS), bf["words"], bf["tokens"], bf["chars"], bf["bytes"])
        assert r.fertility == pytest.approx(bf["word_tokens"] / bf["words"])
        assert r.continued_word_rate == pytest.approx(bf["continued"] / bf["words"])
        assert r.n_byte_fallback_tokens == bf["byte"] and r.n_unk_tokens == bf["unk"]
        assert r.n_roundtrip_failures == bf["fail"] == 0
        for c in letters:
            assert r.letter_coverage[c]["count"] == bf["count"][c], c
            expected = bf["whole"][c] / bf["count"][c] if bf["count"][c] else None
            assert r.letter_coverage[c]["whole_share"] == pytest.approx(expected), c
            for form, v in r.letter_coverage[c]["forms"].items():
                assert v["count"] == bf["form_count"].get(form, 0), form
                if v["count"]:
                    assert v["whole_share"] == pytest.approx(bf["form_whole"].get(form, 0) / v["count"]), form
    assert sum(bf["count"].values()) > 20 and len(bf["form_count"]) > 12  # the corpus exercises the letters


@pytest.fixture(scope="module")
def llama_sp():
    """A Llama-2 / Mistral style SentencePiece BPE: Metaspace with a "▁" prefix on the first word, byte
    fallback, and a decoder that strips the prefix again (built here like transformers' LlamaTokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # trained word by word (as SentencePiece does), used on whole texts (as transformers' LlamaTokenizer)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(EN_TRAIN, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    spec = json.loads(tok.to_str())  # byte pieces are ordinary vocabulary, as in Llama
    vocab = spec["model"]["vocab"]
    for i in range(256):
        vocab.setdefault(f"<0x{i:02X}>", len(vocab))
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), unk_token="<unk>",
                                   eos_token="</s>")


def _offsets_only(monkeypatch):
    """Makes every tokenizer take the offsets path (encode_batch offsets for the token spans)."""
    from lowres_adapt.tokenization._counts import TokenizerFacts

    monkeypatch.setattr(TokenizerFacts, "_piece_bytes", lambda self, pieces, decoded, decoder: None)


def test_piece_bytes_only_for_concatenating_decoders(bbpe, ba_bpe, spbpe, llama_sp, wordpiece, lossy):
    from lowres_adapt.tokenization._counts import TokenizerFacts

    facts = {name: TokenizerFacts.load(t, name) for name, t in
             dict(bbpe=bbpe, ba_bpe=ba_bpe, spbpe=spbpe, llama_sp=llama_sp, wordpiece=wordpiece, lossy=lossy).items()}
    assert {name: f.piece_bytes is not None for name, f in facts.items()} == dict(
        bbpe=True, ba_bpe=True, spbpe=True, llama_sp=True, wordpiece=False, lossy=True)
    # leading spaces the decoder strips, when it can be replayed from the piece bytes (Llama's Strip)
    assert {name: f.decoder_strips for name, f in facts.items()} == dict(
        bbpe=0, ba_bpe=0, spbpe=0, llama_sp=1, wordpiece=None, lossy=0)
    # "Ġcat" spells b" cat"; "Ò" the lone byte 0xD2 (the first of "Һ"); "▁cat" b" cat"; "<0xD2>" 0xD2
    for name, tok, piece, expected in (("bbpe", bbpe, "Ġcat", b" cat"), ("bbpe", bbpe, "Ò", b"\xd2"),
                                       ("bbpe", bbpe, "<|endoftext|>", b"<|endoftext|>"),
                                       ("llama_sp", llama_sp, "▁cat", b" cat"),
                                       ("llama_sp", llama_sp, "<0xD2>", b"\xd2")):
        table, start, length = facts[name].piece_bytes
        i = tok.convert_tokens_to_ids(piece)
        assert bytes(table[start[i]:start[i] + length[i]]) == expected, (name, piece)


@pytest.mark.parametrize("which", ["bbpe", "ba_bpe", "spbpe", "llama_sp", "llama_legacy", "lossy", "prefixed"])
def test_piece_spans_equal_offset_spans(which, request, monkeypatch, ba_bpe, llama_sp):
    """Token spans from the bytes tokens spell give the same report as the tokenizer's offsets, on texts
    with no-break and ideographic spaces, emoji, an added token inside text, leading spaces and empty
    texts; with an added prefix space (Llama's "▁", ByteLevel add_prefix_space) and when a normalizer
    changes the text (lossy: the counter goes over to the offsets). The round trip is counted by decoding
    either way."""
    if which == "prefixed":
        from tokenizers import pre_tokenizers

        tok = copy.deepcopy(ba_bpe)
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    elif which == "llama_legacy":  # Llama 2's tokenizer.json: the prefix comes from a normalizer, always
        from tokenizers import normalizers

        tok = copy.deepcopy(llama_sp)
        tok.backend_tokenizer.pre_tokenizer = None
        tok.backend_tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                                 normalizers.Replace(" ", "▁")])
    else:
        tok = request.getfixturevalue(which)
    texts = CORPUS + ["ҫ\u00a0Ҫ\u3000ә\u2028end", "\U0001F600 ҡ", "cat <|endoftext|> Ҙур", "", " cat",
                      "  Ҫat  dog "] + CORPUS[::-1]
    fast = [diag(tok, texts, batch_size=b).to_dict() for b in (3, 512)]
    from lowres_adapt.tokenization._counts import DiagnosticCounts, TokenizerFacts

    counter = DiagnosticCounts(TokenizerFacts.load(tok, which), la.BASHKIR, max_examples=5)
    counter.update(texts, 0)
    assert counter.piece_spans is (which != "lossy")  # the fast path really ran
    _offsets_only(monkeypatch)
    slow = [diag(tok, texts, batch_size=b).to_dict() for b in (3, 512)]
    assert fast == slow
    be = tok.backend_tokenizer
    lost = [t for t in texts if be.decode(be.encode(t, add_special_tokens=False).ids, skip_special_tokens=False) != t]
    assert fast[0]["n_roundtrip_failures"] == len(lost) and fast[0]["n_tokens"] > 100
    # Llama-style "first" prefixing drops a text's own leading space (a real round-trip loss); the
    # add_prefix_space BPE keeps its added space; the lossy normalizer loses case and accents
    assert bool(lost) is (which in ("llama_sp", "prefixed", "lossy"))
    if which == "llama_sp":
        assert all(t[:1].isspace() for t in lost)


def test_piece_spans_give_way_to_offsets_mid_stream(lossy, llama_sp):
    """A batch the pieces do not spell (the lossy normalizer strips й's breve and lower-cases) is redone
    with offsets; once such batches outnumber the spelled ones, the counter stays on the offsets. A
    tokenizer whose pieces spell every text stays on the pieces."""
    from lowres_adapt.tokenization._counts import DiagnosticCounts, TokenizerFacts

    counter = DiagnosticCounts(TokenizerFacts.load(lossy, "lossy"), la.BASHKIR, max_examples=5)
    batches = [["ҡар яуа"], ["Йыр һәм", "бейеү"], ["ҡар"], ["Һәм"], ["йыр"], ["ҡар"]]
    on = []
    for i, batch in enumerate(batches):
        counter.update(batch, sum(map(len, batches[:i])))
        on.append(counter.piece_spans)
    # spelled / not spelled so far: 1/0, 1/1, 2/1, 2/2, 2/3 -> off, and off it stays
    assert on == [True, True, True, True, False, False]
    texts = [t for b in batches for t in b]
    assert counter.n_texts == 7 and counter.failures == 4  # Йыр, бейеү, Һәм, йыр lose a letter or its case
    assert counter.n_tokens == sum(len(lossy.backend_tokenizer.encode(t).ids) for t in texts)
    assert counter.mismatches[0]["decoded"].startswith("иыр")
    llama = DiagnosticCounts(TokenizerFacts.load(llama_sp, "llama"), la.BASHKIR, max_examples=5)
    llama.update([t for t in CORPUS if not t[:1].isspace()], 0)
    assert llama.piece_spans and llama.failures == 0 and llama.n_byte > 100


def test_wordpiece_matches_brute_force(wordpiece):
    bf = brute_force(wordpiece, CORPUS, la.BASHKIR.special_letters, byte_level=False)
    r = diag(wordpiece, CORPUS, batch_size=2, **TINY)
    assert (r.n_words, r.n_tokens, r.n_unk_tokens) == (bf["words"], bf["tokens"], bf["unk"])
    assert r.fertility == pytest.approx(bf["word_tokens"] / bf["words"])
    assert r.n_roundtrip_failures == bf["fail"] > 0
    assert all(v["whole_share"] in (0.0, None) for v in r.letter_coverage.values())


# ------------------------------------------------------------------------------------ parity, warnings
def test_parity_ratio_of_sums(bbpe):
    pairs = [("cat һә", "cat sat"), ("dog", "the dog")]
    # target tokens: 6 + 2 (cat Ġ Ò » Ó Ļ | do g); reference: 2 + 2 (cat Ġsat | the Ġdog)
    assert [tokens(bbpe, t)[0] for p in pairs for t in p] == [
        ["cat", "Ġ", "Ò", "»", "Ó", "Ļ"], ["cat", "Ġsat"], ["do", "g"], ["the", "Ġdog"]]
    r = diag(bbpe, ["cat"], parallel=pairs)
    assert r.parity == pytest.approx(8 / 4) and r.n_parallel_pairs == 2
    assert r.to_dict()["parity"] == pytest.approx(2.0)
    assert any(w.startswith("parity vs the reference language is 2.00, above the threshold of 1.5")
               for w in r.warnings)
    r2 = diag(bbpe, ["cat"], parallel={"ru": pairs[:1], "en": iter(pairs[1:])})
    assert r2.parity == {"ru": pytest.approx(3.0), "en": pytest.approx(1.0)}
    assert r2.n_parallel_pairs == {"ru": 1, "en": 1}
    assert sum(w.startswith("parity vs ru is 3.00") for w in r2.warnings) == 1
    assert not any("parity vs en" in w for w in r2.warnings)
    assert "parity" not in diag(bbpe, ["cat"]).to_dict()


def test_warnings_name_metric_value_threshold(bbpe):
    r = diag(bbpe, [MIXED])
    text = "\n".join(r.warnings)
    assert "byte_fallback_rate is 60.0% of tokens, above the threshold of 5.0%" in text
    assert "fertility is 3.40 tokens per word, above the threshold of 3" in text
    assert "whole_share: ә 0.00 (in no token), һ 0.00 (in no token)" in text
    assert all("this tokenizer is a risk for Bashkir" in w for w in r.warnings)
    assert len(r.warnings) == 3 and r.is_risky
    off = diag(bbpe, [MIXED], thresholds=dict.fromkeys(
        ["max_byte_fallback_rate", "max_fertility", "max_unk_rate", "max_roundtrip_failures",
         "min_letter_whole_share", "max_parity"]))
    assert off.warnings == [] and not off.is_risky
    looser = diag(bbpe, [MIXED], thresholds=DiagnosticThresholds(max_fertility=3.5, max_byte_fallback_rate=0.6))
    assert len(looser.warnings) == 1 and looser.thresholds["max_fertility"] == 3.5


def test_unk_warning_and_clean_tokenizer(wordpiece, ba_bpe):
    r = diag(wordpiece, [MIXED], **TINY)
    assert any(w.startswith("unk_rate is 80.00% of tokens, above the threshold of 0.10%") for w in r.warnings)
    clean = diag(ba_bpe, BA_TRAIN[:3])
    assert clean.roundtrip_ok and clean.byte_fallback_rate == 0.0 and clean.warnings == []


# ------------------------------------------------------------------------------------ inputs and outputs
def test_accepts_path_and_tokenizers_object(bbpe, tmp_path):
    bbpe.save_pretrained(tmp_path)
    by_obj = diag(bbpe, [MIXED]).to_dict()
    by_path = diag(str(tmp_path), [MIXED]).to_dict()
    by_backend = diag(bbpe.backend_tokenizer, [MIXED], name="raw").to_dict()
    assert by_path["tokenizer_name"] == str(tmp_path) and by_backend["tokenizer_name"] == "raw"
    for d in (by_path, by_backend):
        d["tokenizer_name"] = by_obj["tokenizer_name"]
        assert d == by_obj


def test_report_dict_keys_and_json(bbpe):
    d = diag(bbpe, [MIXED], parallel=[("a", "a")]).to_dict()
    required = {"fertility", "continued_word_rate", "chars_per_token", "bytes_per_token", "unk_rate",
                "byte_fallback_rate", "roundtrip_ok", "letter_coverage", "warnings", "parity", "n_words",
                "n_tokens", "n_chars", "n_bytes", "roundtrip_mismatches", "thresholds", "tokenizer_name",
                "language"}
    assert required <= set(d)
    assert d["language"] == "ba" and d["thresholds"] == DiagnosticThresholds().to_dict()
    assert json.loads(json.dumps(d, ensure_ascii=False)) == d
    md = TokenizerReport(**d).to_markdown()
    assert "| fertility (tokens per word) | 3.4 |" in md
    assert "| ә | 2 | 0 | False | ә: 2, 0, False; Ә: 0, None, False |" in md


def test_eos_as_unk_token_is_not_counted(bbpe):
    # GPT-2 style configs set unk_token = "<|endoftext|>"; the byte-level model itself never emits UNK
    assert bbpe.unk_token_id == bbpe.eos_token_id
    r = diag(bbpe, ["cat <|endoftext|> dog"])
    assert r.n_unk_tokens == 0 and r.n_tokens == len(tokens(bbpe, "cat <|endoftext|> dog")[0])


def test_nfc_normalization():
    lang = la.LanguageProfile(code="xx", name="Test", special_letters="ӓ")  # ӓ = а + U+0308 in NFD
    tok = la.train_tokenizer(["ӓӓ ӓ"] * 20, vocab_size=260)
    nfd = unicodedata.normalize("NFD", "ӓ ӓ")
    assert len(nfd) == 5
    r = diag(tok, [nfd], language=lang)
    assert r.n_chars == 3 and r.letter_coverage["ӓ"]["count"] == 2
    raw = diag(tok, [nfd], language=lang, normalization=None)
    assert raw.n_chars == 5 and raw.letter_coverage["ӓ"]["count"] == 0


def test_truncating_tokenizer_is_diagnosed_whole_and_left_unchanged(bbpe):
    tok = copy.deepcopy(bbpe)
    tok.backend_tokenizer.enable_truncation(3)
    r = diag(tok, [MIXED])
    assert r.n_tokens == 20
    assert tok.backend_tokenizer.truncation["max_length"] == 3


def test_bad_inputs(bbpe):
    with pytest.raises(ValueError, match="wrap a single text in a list"):
        diag(bbpe, "one text")
    with pytest.raises(ValueError, match="must hold strings, got int"):
        diag(bbpe, ["ok", 3])
    with pytest.raises(ValueError, match="hold no words"):
        diag(bbpe, ["", "  \n"])
    with pytest.raises(ValueError, match="fast .*use_fast=True"):
        diag(object(), ["x"])
    with pytest.raises(ValueError, match=r"parallel\[1\] must be a \(target_sentence, reference_sentence\)"):
        diag(bbpe, ["x"], parallel=[("a", "b"), "ab"])
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        diag(bbpe, ["x"], language="xx")
    with pytest.raises(ValueError, match="normalization='NFX'"):
        diag(bbpe, ["x"], normalization="NFX")
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        diag(bbpe, ["x"], batch_size=0)


@pytest.mark.parametrize("field_name, value", [
    ("max_byte_fallback_rate", 1.5), ("max_unk_rate", -0.1), ("min_letter_whole_share", "half"),
    ("max_fertility", 0), ("max_parity", float("inf")), ("max_roundtrip_failures", -1),
    ("max_roundtrip_failures", 0.5),
])
def test_thresholds_validation(field_name, value):
    with pytest.raises(ValueError, match=rf"DiagnosticThresholds\.{field_name} .*got {re.escape(repr(value))}"):
        DiagnosticThresholds(**{field_name: value})


def test_thresholds_round_trip():
    t = DiagnosticThresholds(max_fertility=2.0, max_parity=None)
    assert DiagnosticThresholds.from_dict(t.to_dict()) == t
    assert copy.deepcopy(t) == t and pickle.loads(pickle.dumps(t)) == t
    with pytest.raises(ValueError, match="unknown DiagnosticThresholds keys .'max_fertilty'."):
        DiagnosticThresholds.from_dict({"max_fertilty": 2})


def test_compare_tokenizers(bbpe, spbpe, wordpiece, ba_bpe):
    toks = [bbpe, spbpe, wordpiece, ba_bpe]
    table = la.compare_tokenizers(toks, iter(CORPUS), names=["bbpe", "sp", "wp", "ba"],
                                  parallel=[("cat һә", "cat sat")], progress=False, **TINY)
    assert [row["tokenizer"] for row in table] == ["bbpe", "sp", "wp", "ba"]
    for row, tok, rep in zip(table, toks, table.reports, strict=True):
        alone = diag(tok, CORPUS, parallel=[("cat һә", "cat sat")], **TINY)
        assert rep.to_dict() | {"tokenizer_name": "x"} == alone.to_dict() | {"tokenizer_name": "x"}
        assert row["fertility"] == alone.fertility and row["parity"] == alone.parity
        assert row["n_warnings"] == len(alone.warnings)
        shares = [v["whole_share"] for v in alone.letter_coverage.values() if v["count"]]
        assert row["min_letter_whole_share"] == min(shares)
    assert table[0]["letters_not_whole"] == "әөүғҡңҙҫһ" and table[0]["min_letter_whole_share"] == 0.0
    assert table[2]["unk_rate"] > 0 and table[2]["roundtrip_ok"] is False
    md = table.to_markdown().splitlines()
    assert md[0].startswith("| tokenizer | vocab_size | fertility |") and len(md) == 2 + len(toks)
    assert md[4].startswith("| wp |")
    same = la.compare_tokenizers([bbpe, bbpe], ["cat"], language="en", progress=False)
    assert [r["tokenizer"] for r in same] == ["TokenizersBackend", "TokenizersBackend #2"]
    with pytest.raises(ValueError, match="one name per tokenizer"):
        la.compare_tokenizers([bbpe, spbpe], ["x"], names=["a"], progress=False)


@pytest.mark.shared_data
def test_mini_gpt2_ru_falls_back_on_bashkir_letters(mini_gpt2_ru, shared_data):
    with open(shared_data / "corpus-test.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(line)["text"] for line in itertools.islice(fh, 20)]
    r = diag(str(mini_gpt2_ru), docs)
    # its vocabulary has single-letter tokens for eight of the nine letters (only four longer tokens
    # hold one, hence the high fertility) and none for ҫ, which always falls back to two byte pieces
    assert r.byte_fallback_rate > 0.005 and r.roundtrip_ok and r.unk_rate == 0.0 and r.fertility > 3
    assert r.letter_coverage["ҫ"]["in_vocab"] is False and r.letter_coverage["ҫ"]["whole_share"] == 0.0
    assert r.letter_coverage["ә"]["in_vocab"] is True and r.letter_coverage["ә"]["whole_share"] > 0.9
    capital = r.letter_coverage["ә"]["forms"]["Ә"]  # no capital has a token: always byte pieces
    assert capital["in_vocab"] is False and (capital["count"] == 0 or capital["whole_share"] == 0.0)
    assert r.n_byte_fallback_tokens >= 2 * r.letter_coverage["ҫ"]["count"]
    assert any(w.startswith("fertility is") for w in r.warnings)
    assert any(w.startswith("letter_coverage") and "ҫ 0.00 (in no token)" in w for w in r.warnings)

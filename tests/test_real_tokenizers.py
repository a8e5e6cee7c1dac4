"""Real published tokenizers, offline: Mistral-7B v0.1's SentencePiece model and tekken (mistral-common),
GPT-2's and Whisper's byte-level BPE ranks (openai-whisper), loaded with ``la.load_tokenizer`` and held
against the libraries that define them (sentencepiece, tiktoken, mistral_common); then the diagnostics on
them, on both span paths, the refusals, and a broken tokenizer whose byte tokens are registered as special.

Each test skips with the package's name when mistral-common, openai-whisper, tiktoken or sentencepiece is
missing (all are in the ``dev`` extra).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path

import pytest

import lowres_adapt as la
from lowres_adapt.errors import TokenizerConversionError
from lowres_adapt.tokenization.loading import PROBE

# the shared Bashkir data, located as tests/conftest.py does
SHARED_DATA = Path(os.environ.get("LOWRES_ADAPT_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "bashkir"
PROBES = [PROBE, "Башҡортостан", " leading space", "ҡыҙ ҫыу\n\nӘ Ө Ү Ғ Ҡ Ң Ҙ Ҫ Һ", "x" * 50 + " 123456789 $$$ ...!?",
          "emoji 😀 and ideographic\u3000space, no-break\u00a0space", ""]


def _data_file(package: str, *parts: str) -> Path:
    module = pytest.importorskip(package, reason=f"{package} is not installed (pip install -e '.[dev]')")
    path = Path(os.path.dirname(module.__file__), *parts)
    if not path.is_file():
        pytest.skip(f"{package} does not ship {'/'.join(parts)}")
    return path


def _texts() -> list[str]:
    """25 documents of the shared Bashkir test split when it is there, else the shipped Bashkir sample."""
    test = SHARED_DATA / "corpus-test.jsonl"
    if test.is_file():
        with open(test, encoding="utf-8") as fh:
            return [json.loads(line)["text"] for line in itertools.islice(fh, 25)]
    return la.sample_corpus("ba")


def _parallel() -> list[dict[str, str]]:
    path = SHARED_DATA / "parallel-ba-ru-en.jsonl"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, 60)]


TEXTS = _texts()
PARALLEL = _parallel()


# ------------------------------------------------------------------------------------ the real tokenizers
@pytest.fixture(scope="module")
def mistral_v1():
    pytest.importorskip("sentencepiece", reason="sentencepiece is not installed")
    path = _data_file("mistral_common", "data", "tokenizer.model.v1")
    import sentencepiece

    return path, la.load_tokenizer(path), sentencepiece.SentencePieceProcessor(model_file=str(path))


def _ranks(name: str):
    tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is not installed")
    path = _data_file("whisper", "assets", f"{name}.tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path))
    # GPT-2's regex and <|endoftext|> after the ranks, written out here as tiktoken's gpt2 encoding has them
    enc = tiktoken.Encoding(name, pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
                            mergeable_ranks=ranks, special_tokens={"<|endoftext|>": len(ranks)})
    return path, la.load_tokenizer(path), enc


@pytest.fixture(scope="module")
def gpt2():
    return _ranks("gpt2")


@pytest.fixture(scope="module")
def whisper_multilingual():
    return _ranks("multilingual")


@pytest.fixture(scope="module")
def tekken():
    path = _data_file("mistral_common", "data", "tekken_240911.json")
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    return path, la.load_tokenizer(path), Tekkenizer.from_file(str(path))


REAL = ["mistral_v1", "gpt2", "whisper_multilingual", "tekken"]


def _reference_ids(which: str, ref, text: str) -> list[int]:
    if which == "mistral_v1":
        return list(ref.encode(text))
    if which == "tekken":
        return list(ref.encode(text, bos=False, eos=False))
    return ref.encode_ordinary(text)


def _reference_size(which: str, ref) -> int:
    return {"mistral_v1": lambda: ref.get_piece_size(), "tekken": lambda: ref.n_words}.get(which, lambda: ref.n_vocab)()


@pytest.mark.parametrize("which, size", [("mistral_v1", 32000), ("gpt2", 50257), ("whisper_multilingual", 50258),
                                         ("tekken", 131072)])
def test_loaded_tokenizer_equals_its_source(which, size, request):
    _, tok, ref = request.getfixturevalue(which)
    assert len(tok) == tok.backend_tokenizer.get_vocab_size(with_added_tokens=True) == _reference_size(which, ref) == size
    texts = PROBES + TEXTS + [row[k] for row in PARALLEL for k in ("ba", "ru", "en")]
    n_tokens = 0
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == _reference_ids(which, ref, text), text[:60]
        n_tokens += len(ids)
    assert n_tokens > 2000


def test_mistral_v1_cuts_bashkir_as_sentencepiece_does(mistral_v1):
    _, tok, sp = mistral_v1
    # the split quoted in the issue, from sentencepiece itself: ҡ has no piece and falls back to two bytes
    want = ["▁Ба", "ш", "<0xD2>", "<0xA1>", "ор", "то", "стан"]
    assert sp.encode("Башҡортостан", out_type=str) == want
    assert tok.tokenize("Башҡортостан") == want
    assert tok.decode(tok("Башҡортостан", add_special_tokens=False)["input_ids"]) == "Башҡортостан"
    assert (tok.bos_token, tok.eos_token, tok.unk_token) == ("<s>", "</s>", "<unk>")


def test_gpt2_ranks_need_gpt2s_regex(gpt2):
    """transformers' TikTokenConverter defaults to a cl100k-style regex; with it the GPT-2 ranks cut digits
    and spaces differently, and the check in load_tokenizer says so, naming both sides."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from lowres_adapt.tokenization.loading import _Reference, check_tokenizer

    path, tok, enc = gpt2
    default = PreTrainedTokenizerFast(tokenizer_object=TikTokenConverter(
        vocab_file=str(path), extra_special_tokens=["<|endoftext|>"]).converted())
    ref = _Reference("tiktoken", enc.n_vocab, enc.encode_ordinary, lambda i: repr(enc.decode_single_token_bytes(i)))
    check_tokenizer(tok, path, ref)  # the regex load_tokenizer picked passes
    with pytest.raises(TokenizerConversionError, match=r"gives \d+ tokens and tiktoken \d+; they part at token \d+: "
                                                       r"converted \[.*\] \(ids .*\) vs original .*pattern="):
        check_tokenizer(default, path, ref)
    with pytest.raises(TokenizerConversionError, match="has 50,257 vocabulary entries, sentencepiece .* reads 32,000"):
        from lowres_adapt.tokenization.loading import _sentencepiece_reference

        check_tokenizer(tok, path, _sentencepiece_reference(_data_file("mistral_common", "data",
                                                                       "tokenizer.model.v1")))


def test_load_tokenizer_saved_and_reloaded(mistral_v1, tmp_path):
    """A converted tokenizer saves as a tokenizer.json folder that loads back (checked) with the same ids."""
    _, tok, sp = mistral_v1
    tok.save_pretrained(tmp_path)
    again = la.load_tokenizer(tmp_path, probe=TEXTS[:3])
    assert len(again) == 32000
    assert again(PROBE, add_special_tokens=False)["input_ids"] == list(sp.encode(PROBE))
    assert la.load_tokenizer(tmp_path / "tokenizer.json").tokenize("Башҡортостан")[2:4] == ["<0xD2>", "<0xA1>"]


def test_load_tokenizer_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file or folder .*check the path"):
        la.load_tokenizer(tmp_path / "missing.model")
    (tmp_path / "vocab.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match="cannot tell what kind .* pass kind="):
        la.load_tokenizer(tmp_path / "vocab.bin")
    with pytest.raises(ValueError, match="kind='spm' is not one of"):
        la.load_tokenizer(tmp_path / "vocab.bin", kind="spm")
    (tmp_path / "mine.tiktoken").write_text("IQ== 0\n")
    with pytest.raises(ValueError, match="stores no pre-tokenizer regex.*pass pattern="):
        la.load_tokenizer(tmp_path / "mine.tiktoken")


# ------------------------------------------------------------------------------------ diagnostics on them
def _offsets_only(monkeypatch):
    from lowres_adapt.tokenization._counts import TokenizerFacts

    monkeypatch.setattr(TokenizerFacts, "_piece_bytes", lambda self, pieces, decoded, decoder: None)


def _diag(tok, texts, **kw):
    parallel = {"ru": [(r["ba"], r["ru"]) for r in PARALLEL], "en": [(r["ba"], r["en"]) for r in PARALLEL]}
    return la.diagnose_tokenizer(tok, texts, parallel=parallel if PARALLEL else None, progress=False, **kw)


@pytest.mark.parametrize("which", ["mistral_v1", "gpt2", "tekken"])  # Whisper's ranks: the GPT-2 family
def test_diagnostics_same_on_both_span_paths(which, request, monkeypatch):
    from lowres_adapt.tokenization._counts import DiagnosticCounts

    _, tok, ref = request.getfixturevalue(which)
    texts = TEXTS + PROBES
    offsets_calls = []
    with monkeypatch.context() as m:  # count the batches that go to the offsets path
        m.setattr(DiagnosticCounts, "_spans_from_offsets",
                  lambda self, *a, _f=DiagnosticCounts._spans_from_offsets: offsets_calls.append(1) or _f(self, *a))
        fast = _diag(tok, texts, batch_size=7).to_dict()
    n_batches = -(-len(texts) // 7)
    assert offsets_calls == [] and n_batches > 2  # every batch went through the piece-bytes path
    _offsets_only(monkeypatch)
    slow = _diag(tok, texts, batch_size=7).to_dict()
    assert fast == slow
    # the token count and the round trip are the reference library's, text by text
    ids = [_reference_ids(which, ref, t) for t in texts]
    assert fast["n_tokens"] == sum(map(len, ids)) > 10_000
    assert fast["n_roundtrip_failures"] == sum(ref.decode(i) != t for i, t in zip(ids, texts, strict=True)) == 0
    assert fast["vocab_size"] == len(tok) and fast["fertility"] > 1


def test_compare_tokenizers_on_real_ones(mistral_v1, gpt2):
    texts = TEXTS[:10]
    table = la.compare_tokenizers([mistral_v1[1], gpt2[1]], texts, names=["mistral-7b-v0.1", "gpt2"], progress=False)
    for row, rep, tok in zip(table, table.reports, [mistral_v1[1], gpt2[1]], strict=True):
        alone = la.diagnose_tokenizer(tok, texts, progress=False)
        assert rep.to_dict() | {"tokenizer_name": ""} == alone.to_dict() | {"tokenizer_name": ""}
        assert row["fertility"] == alone.fertility
    # GPT-2 spends more tokens on Bashkir than Mistral-7B: its Cyrillic is mostly single bytes
    assert table[1]["fertility"] > table[0]["fertility"] and table[1]["byte_fallback_rate"] > 0.2


# ------------------------------------------------------------------------------------ refusals
def test_the_three_token_llama_tokenizer_is_refused(mistral_v1):
    from transformers import LlamaTokenizerFast

    path, _, _ = mistral_v1
    bad = LlamaTokenizerFast(vocab_file=str(path))  # on transformers 5: 3 entries, encodes nothing
    if len(bad) >= 100:
        pytest.skip(f"this transformers loads the SentencePiece file into {len(bad)} entries")
    with pytest.raises(ValueError, match=rf"has {len(bad)} vocabulary entries, fewer than min_vocab_size=100.*"
                                         r"la\.load_tokenizer\(path\)"):
        la.diagnose_tokenizer(bad, TEXTS, progress=False)
    with pytest.raises(ValueError, match="has 3 vocabulary entries"):
        la.compare_tokenizers([mistral_v1[1], bad], TEXTS, progress=False)
    with pytest.raises(ValueError, match=r"cut 10 texts holding \d+ words into no tokens at all .*la\.load_tokenizer"):
        la.diagnose_tokenizer(bad, TEXTS[:10], progress=False, min_vocab_size=0)
    from lowres_adapt.tokenization.loading import check_tokenizer

    with pytest.raises(TokenizerConversionError, match="3 vocabulary entries, fewer than 100"):
        check_tokenizer(bad, path, None)
    with pytest.raises(ValueError, match="min_vocab_size must be an int >= 0, got -1"):
        la.diagnose_tokenizer(mistral_v1[1], TEXTS, progress=False, min_vocab_size=-1)


# ------------------------------------------------------------------------------------ a broken tokenizer
@pytest.mark.parametrize("which", ["mistral_v1", "gpt2"])
def test_byte_tokens_registered_as_special_fail_the_round_trip(which, request, monkeypatch):
    """Byte pieces registered as special tokens: encoding is unchanged, but decode(skip_special_tokens=True),
    as generated text is decoded, drops them, and with them the letters they spell (ҡ in Mistral-7B; every
    Cyrillic letter but a few in GPT-2). The round trip reports it, with examples, on both span paths."""
    _, tok, _ = request.getfixturevalue(which)
    broken = copy.deepcopy(tok)
    if which == "mistral_v1":
        pieces = [f"<0x{b:02X}>" for b in range(0x80, 0x100)]
    else:
        byte_char = {v: k for k, v in
                     __import__("transformers.convert_slow_tokenizer", fromlist=["x"]).bytes_to_unicode().items()}
        pieces = [c for c, b in byte_char.items() if b >= 0x80]
    broken.add_special_tokens({"additional_special_tokens": pieces})
    text = "Башҡортостан"
    ids = broken(text, add_special_tokens=False)["input_ids"]
    assert ids == tok(text, add_special_tokens=False)["input_ids"]  # encoding unchanged
    assert broken.decode(ids, skip_special_tokens=True) != text  # letters lost

    texts = [text] + TEXTS[:10] + ["plain ASCII only"]  # the unbroken tokenizer round-trips all (span test)
    special = {broken.convert_tokens_to_ids(p) for p in pieces}
    lost = [t for t in texts if set(tok(t, add_special_tokens=False)["input_ids"]) & special]  # second method
    reports = [_diag(broken, texts).to_dict()]
    _offsets_only(monkeypatch)
    reports.append(_diag(broken, texts).to_dict())
    assert reports[0] == reports[1]
    r = reports[0]
    assert not r["roundtrip_ok"] and r["n_roundtrip_failures"] == len(lost) == len(texts) - 1
    first = r["roundtrip_mismatches"][0]
    assert first["index"] == 0 and first["original"] == text and first["skip_special_tokens"] is True
    if which == "mistral_v1":
        assert first == {"index": 0, "position": 3, "original": text, "decoded": "Башортостан",
                         "skip_special_tokens": True}
    assert len(r["roundtrip_mismatches"]) == 5
    warning = next(w for w in r["warnings"] if w.startswith("roundtrip failed"))
    assert f"for {len(lost)} of {len(texts)} texts" in warning and "registered as special tokens" in warning
    assert "Башҡортостан" in warning


def test_in_process_llama_bpe_has_mistral_v1s_layout(mistral_v1):
    """la.train_tokenizer(kind="llama_bpe") (the tests' and benchmarks' stand-in for Llama-2 / Mistral) is
    laid out as the real Mistral-7B v0.1 tokenizer converted by transformers: Metaspace without splitting,
    byte-fallback BPE with the 256 byte pieces as plain vocabulary, the same decoder. One difference, by
    design: Mistral's converted normalizer turns a *leading* space into its own "▁" piece (as SentencePiece
    does); the stand-in has no normalizer, so a text that starts with a space encodes as without it."""
    mistral = mistral_v1[1]
    ours = la.train_tokenizer(la.sample_corpus("ru") + la.sample_corpus("en"), 1000, kind="llama_bpe",
                              min_frequency=0, limit_alphabet=120)
    a, b = (json.loads(t.backend_tokenizer.to_str()) for t in (ours, mistral))
    assert a["decoder"] == b["decoder"]
    (meta,) = b["pre_tokenizer"]["pretokenizers"]
    assert a["pre_tokenizer"]["type"] == meta["type"] == "Metaspace" and a["pre_tokenizer"]["split"] is meta["split"] is False
    assert a["model"]["type"] == b["model"]["type"] == "BPE" and a["model"]["byte_fallback"] is b["model"]["byte_fallback"] is True
    byte_pieces = [f"<0x{i:02X}>" for i in range(256)]
    assert all(p in a["model"]["vocab"] and p in b["model"]["vocab"] for p in byte_pieces)
    for tok in (ours, mistral):  # plain vocabulary: decoding generated text keeps byte-fallback letters
        assert not {t["content"] for t in json.loads(tok.backend_tokenizer.to_str())["added_tokens"]} & set(byte_pieces)
        text = "Ҡыҙ бала мәктәпкә бара."
        assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    assert ours.tokenize("ҡ")[-2:] == mistral.tokenize("ҡ")[-2:] == ["<0xD2>", "<0xA1>"]
    # the leading-space difference: Mistral (as sentencepiece) keeps the extra space, the stand-in does not
    assert mistral.tokenize(" Hello") == ["▁", "▁Hello"] != mistral.tokenize("Hello")
    assert ours.tokenize(" Hello") == ours.tokenize("Hello")

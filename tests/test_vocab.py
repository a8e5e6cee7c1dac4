"""Vocabulary extension on tiny in-process models: exact tokens added, mean-of-pieces rows, reload, LoRA."""

from __future__ import annotations

import copy

import pytest
import torch

import lowres_adapt as la
from lowres_adapt.tokenization.vocab import new_token_peft_kwargs, select_new_tokens

# A "base language" the tiny base tokenizer is trained on, and a target language it never saw.
RU = [
    "Россия – самая большая страна в мире. Её столица – город Москва, где живут миллионы людей.",
    "Мы живём в большом городе, где много улиц, парков и школ. Дети ходят в школу каждый день.",
    "Летом мы ездим к бабушке в деревню. Там есть река, лес и большое поле.",
    "Учитель сказал, что завтра будет контрольная работа по русскому языку и математике.",
    "Новости дня: правительство обсуждает новый закон о развитии образования в регионах.",
] * 6
BA = [
    "Башҡортостан Республикаһы – Рәсәй Федерацияһы составындағы республика. Башҡалаһы – Өфө ҡалаһы.",
    "Башҡорт теле төрки телдәре ғаиләһенә ҡарай. Был телдә һөйләшеүселәр бик күп.",
    "Беҙҙең ауылда матур йылға аға. Балалар йылғала һыу инә, ә өлкәндәр эшләй.",
    "Мин башҡорт телен өйрәнәм, сөнки ул минең әсәйемдең теле. Әсәйем миңә әкиәттәр һөйләй.",
    "Урал тауҙары бик бейек һәм матур. Унда күп ҡоштар һәм хайуандар йәшәй.",
    "Йәй көнө беҙ әбейемә ҡунаҡҡа барабыҙ. Әбейем тәмле бәлеш бешерә һәм сәй ҡайната.",
] * 5


@pytest.fixture(scope="module")
def ru_tok():
    return la.train_tokenizer(RU, vocab_size=300)


@pytest.fixture(scope="module")
def ru_gpt2(ru_tok):
    return la.build_tiny_model("gpt2", ru_tok, hidden_size=16, num_layers=1, num_heads=2, max_positions=256)


@pytest.fixture(scope="module")
def ru_llama(ru_tok):
    return la.build_tiny_model("llama", ru_tok, hidden_size=16, num_layers=1, num_heads=2, max_positions=256)


@pytest.fixture(scope="module")
def extended_gpt2(ru_gpt2, ru_tok):
    return la.extend_vocabulary(ru_gpt2, ru_tok, BA, max_new_tokens=40, vocab_size=500)


def _model_pieces(tok, token: str) -> list[int]:
    """Ids the tokenizer's BPE model cuts a vocabulary entry into (no pre-tokenization)."""
    return [t.id for t in tok.backend_tokenizer.model.tokenize(token)]


def test_ranking_matches_brute_force(ru_tok):
    cands = select_new_tokens(ru_tok, BA, 40, vocab_size=500)
    assert len(cands) == 40 and len({c.token for c in cands}) == 40
    vocab = ru_tok.get_vocab()
    chosen = [c for c in cands if c.needed_by is None]
    for c in cands:
        pieces = _model_pieces(ru_tok, c.token)
        assert list(c.pieces) == pieces and len(pieces) >= 2
        assert c.score == c.frequency * (len(pieces) - 1)
        assert c.token not in vocab
        if "\ufffd" not in c.text:
            assert ru_tok.decode(pieces) == c.text  # the text is real text, not byte symbols
    # a merge step comes before the token that needs it, and is a piece of it
    for k, c in enumerate(cands):
        if c.needed_by is not None:
            later = [d.token for d in cands[k + 1:]]
            assert c.needed_by in later and c.token in c.needed_by
    assert [c.score for c in chosen] == sorted((c.score for c in chosen), reverse=True)
    # frequency recomputed independently: the trained target tokenizer's emitted tokens, counted
    trained = ru_tok.train_new_from_iterator(BA, vocab_size=500)
    ids = [i for t in BA for i in trained(t, add_special_tokens=False)["input_ids"]]
    top = chosen[0]
    assert ids.count(trained.convert_tokens_to_ids(top.token)) == top.frequency
    # the token chosen first has the best score of all candidates
    all_cands = select_new_tokens(ru_tok, BA, 10_000, vocab_size=500)
    assert top.score == max(c.score for c in all_cands)


def test_extension_adds_exactly_the_chosen_tokens(extended_gpt2, ru_tok, ru_gpt2):
    model, tok, info = extended_gpt2
    chosen = [c.token for c in select_new_tokens(ru_tok, BA, 40, vocab_size=500)]
    assert not info.skipped and info.method == "bpe_model" and not info.shortfall and not info.unreachable
    assert info.added_tokens == chosen
    assert set(tok.get_vocab()) - set(ru_tok.get_vocab()) == set(chosen)
    assert all(tok.get_vocab()[t] == i for t, i in ru_tok.get_vocab().items())  # old ids unchanged
    assert info.new_token_ids == list(range(len(ru_tok), len(ru_tok) + 40))
    assert len(tok) == len(ru_tok) + 40 == model.config.vocab_size
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    # the inputs are untouched
    assert ru_gpt2.get_input_embeddings().weight.shape[0] == len(ru_tok)
    # every added token is a regular BPE entry the model produces for its own text; the corpus round-trips
    for t, i in zip(info.added_tokens, info.new_token_ids, strict=True):
        assert _model_pieces(tok, t) == [i]
    assert tok(" һәм", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids("Ġ" + "Ò»ÓĻÐ¼")]
    for doc in BA[:6] + RU[:5]:
        assert tok.decode(tok(doc)["input_ids"]) == doc
    assert info.roundtrip_ok


def test_fertility_before_after_recomputed(extended_gpt2, ru_tok):
    _, tok, info = extended_gpt2
    words = sum(len(t.split()) for t in BA)
    n_before = sum(len(ru_tok(t)["input_ids"]) for t in BA)
    n_after = sum(len(tok(t)["input_ids"]) for t in BA)
    assert (info.tokens_before, info.tokens_after) == (n_before, n_after)
    assert info.fertility_before == pytest.approx(n_before / words)
    assert info.fertility_after == pytest.approx(n_after / words)
    assert info.fertility_after < 0.8 * info.fertility_before


def test_tokenizer_diagnostics_read_the_extended_tokenizer(extended_gpt2, ru_tok):
    """diagnose_tokenizer sees the added tokens: its token count matches info, fertility falls, text round-trips."""
    _, tok, info = extended_gpt2
    before = la.diagnose_tokenizer(ru_tok, BA, language=la.BASHKIR, progress=False)
    after = la.diagnose_tokenizer(tok, BA, language=la.BASHKIR, progress=False)
    n_bytes = sum(len(t.encode("utf-8")) for t in BA)
    assert before.bytes_per_token == pytest.approx(n_bytes / info.tokens_before)
    assert after.bytes_per_token == pytest.approx(n_bytes / info.tokens_after)
    assert after.roundtrip_ok and after.fertility < 0.8 * before.fertility
    assert after.byte_fallback_rate < before.byte_fallback_rate


def _check_mean_of_pieces(old_model, new_model, info, old_tok):
    old_in = old_model.get_input_embeddings().weight
    new_in = new_model.get_input_embeddings().weight
    n_old = old_in.shape[0]
    torch.testing.assert_close(new_in[:n_old], old_in)  # old rows unchanged
    for t, i in zip(info.added_tokens, info.new_token_ids, strict=True):
        pieces = _model_pieces(old_tok, t)
        assert info.pieces[t] == pieces
        expected = torch.stack([old_in[p] for p in pieces]).sum(0) / len(pieces)
        torch.testing.assert_close(new_in[i], expected)


def test_mean_of_pieces_init_tied_gpt2(extended_gpt2, ru_gpt2, ru_tok):
    model, _, info = extended_gpt2
    _check_mean_of_pieces(ru_gpt2, model, info, ru_tok)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_mean_of_pieces_init_untied_llama(ru_llama, ru_tok):
    model, tok, info = la.extend_vocabulary(ru_llama, ru_tok, BA, max_new_tokens=15, vocab_size=500)
    assert len(info.added_tokens) == 15
    _check_mean_of_pieces(ru_llama, model, info, ru_tok)
    old_out = ru_llama.get_output_embeddings().weight
    new_out = model.get_output_embeddings().weight
    assert new_out.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(new_out[: old_out.shape[0]], old_out)
    for t, i in zip(info.added_tokens, info.new_token_ids, strict=True):
        torch.testing.assert_close(new_out[i], old_out[_model_pieces(ru_tok, t)].mean(0))


def test_explicit_tokens(ru_gpt2, ru_tok):
    model, tok, info = la.extend_vocabulary(ru_gpt2, ru_tok, new_tokens=[" һәм", "ҙәр"])
    assert info.added_tokens == [" һәм", "ҙәр"]
    assert tok.convert_ids_to_tokens(tok(" һәм ҙәр")["input_ids"]) == [" һәм", "Ġ", "ҙәр"]
    old = ru_gpt2.get_input_embeddings().weight
    torch.testing.assert_close(model.get_input_embeddings().weight[info.new_token_ids[0]],
                               old[ru_tok(" һәм", add_special_tokens=False)["input_ids"]].mean(0))


def test_saved_and_reloaded_model_scores_the_same(extended_gpt2, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok, info = extended_gpt2
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tok2) == len(tok) and tok2.convert_ids_to_tokens(info.new_token_ids) == info.added_tokens
    model.eval()
    for doc in BA[:3]:
        ids, ids2 = tok(doc, return_tensors="pt")["input_ids"], tok2(doc, return_tensors="pt")["input_ids"]
        assert torch.equal(ids, ids2)
        assert any(i in info.new_token_ids for i in ids[0].tolist())
        with torch.no_grad():
            a = model(input_ids=ids, labels=ids).loss
            b = model2(input_ids=ids2, labels=ids2).loss
        torch.testing.assert_close(a, b)


def test_metaspace_byte_fallback_tokenizer(ru_gpt2):
    tok = la.train_tokenizer(RU, vocab_size=150, kind="bpe_byte_fallback")
    model = la.build_tiny_model("llama", tok, hidden_size=16, num_layers=1, num_heads=2)
    m2, t2, info = la.extend_vocabulary(model, tok, BA, max_new_tokens=20, vocab_size=700)
    assert len(info.added_tokens) == 20 and info.roundtrip_ok
    assert any(t.startswith(" ") for t in info.added_texts)  # "▁" surfaces as a real space
    assert all(t.replace("▁", " ") == x for t, x in zip(info.added_tokens, info.added_texts, strict=True))
    for doc in BA[:6]:
        assert t2.decode(t2(doc)["input_ids"]) == doc
    assert info.fertility_after < info.fertility_before


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lora_trains_only_new_rows(arch, ru_tok):
    from peft import LoraConfig, get_peft_model

    base = la.build_tiny_model(arch, ru_tok, hidden_size=16, num_layers=1, num_heads=2)
    model, tok, info = la.extend_vocabulary(base, ru_tok, BA, max_new_tokens=10, vocab_size=500)
    kwargs = new_token_peft_kwargs(model, info)
    emb_name = "wte" if arch == "gpt2" else "embed_tokens"
    expected = {emb_name: info.new_token_ids} if arch == "gpt2" else {emb_name: info.new_token_ids,
                                                                      "lm_head": info.new_token_ids}
    assert kwargs == {"trainable_token_indices": expected}
    target = ["c_attn"] if arch == "gpt2" else ["q_proj"]
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=target, **kwargs))
    before = peft_model.get_input_embeddings()(torch.arange(len(tok))[None]).detach()[0]
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    ids = tok(BA[0] + " " + BA[1], return_tensors="pt")["input_ids"]
    assert any(i in info.new_token_ids for i in ids[0].tolist())
    peft_model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    after = peft_model.get_input_embeddings()(torch.arange(len(tok))[None]).detach()[0]
    changed = (after - before).abs().sum(-1) > 0
    n_old = len(ru_tok)
    assert not changed[:n_old].any()
    used_new = sorted({i for i in ids[0].tolist() if i >= n_old})
    assert changed[used_new].all()
    full = new_token_peft_kwargs(model, info, how="modules_to_save")
    assert full == ({"modules_to_save": [emb_name, "lm_head"], "ensure_weight_tying": True} if arch == "gpt2"
                    else {"modules_to_save": [emb_name, "lm_head"]})
    full_model = get_peft_model(model, LoraConfig(r=2, target_modules=target, **full))
    trainable = {n for n, p in full_model.named_parameters() if p.requires_grad}
    assert any(f"{emb_name}.modules_to_save" in n for n in trainable)


def test_bad_input(ru_gpt2, ru_tok):
    with pytest.raises(ValueError, match="max_new_tokens"):
        select_new_tokens(ru_tok, BA, -1)
    with pytest.raises(ValueError, match="texts"):
        la.extend_vocabulary(ru_gpt2, ru_tok, [])
    with pytest.raises(ValueError, match="already in the vocabulary"):
        la.extend_vocabulary(ru_gpt2, ru_tok, new_tokens=["<|endoftext|>"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        la.extend_vocabulary("/nonexistent/model", None, BA)
    wp = la.train_tokenizer(RU, vocab_size=100, kind="wordpiece")
    with pytest.raises(ValueError, match="WordPiece"):
        la.extend_vocabulary(ru_gpt2, wp, BA)
    from peft import LoraConfig, get_peft_model

    with pytest.raises(ValueError, match="PEFT model"):
        la.extend_vocabulary(get_peft_model(la.build_tiny_model("gpt2", vocab_size=50, hidden_size=16),
                                            LoraConfig(r=2, target_modules=["c_attn"])), ru_tok, BA)
    with pytest.raises(ValueError, match="how must be"):
        new_token_peft_kwargs(ru_gpt2, [1], how="everything")


# --- SentencePiece-style and real tokenizers (issue 11) ---------------------------------------------------
# Each family: the base tokenizer, a tiny Llama whose vocabulary matches it, and 200 tokens learnt from 200
# shared Bashkir training documents. Held out: 100 valid documents and 100 Russian / English sentences.

FAMILIES = ["llama_style", "mistral_v1", "mistral_v1_legacy", "gpt2_tiktoken"]
N_NEW = 200


def _llama_style_tokenizer():
    """Llama-2 / Mistral layout built in-process (la.train_tokenizer's 'llama_bpe'), on RU + EN."""
    return la.train_tokenizer(la.sample_corpus("ru") + la.sample_corpus("en"), 1000, kind="llama_bpe",
                              min_frequency=0, limit_alphabet=120)


def _mistral_model_file():
    pytest.importorskip("mistral_common", reason="needs mistral-common (the Mistral-7B v0.1 tokenizer.model)")
    from pathlib import Path

    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.exists():
        pytest.skip(f"mistral-common has no {path.name}")
    return path


def _mistral_v1(legacy: bool):
    """Mistral-7B v0.1's SentencePiece model through transformers' own SentencePiece conversion."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(_mistral_model_file().read_bytes())
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=legacy)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    assert len(tok) == len(proto.pieces) == 32000  # (LlamaTokenizerFast(vocab_file=...) gives 3 on 5.x)
    return tok


def _gpt2_tiktoken():
    """GPT-2's byte-level BPE ranks (openai-whisper's gpt2.tiktoken) through transformers' tiktoken conversion."""
    pytest.importorskip("whisper", reason="needs openai-whisper (whisper/assets/gpt2.tiktoken)")
    pytest.importorskip("tiktoken", reason="needs tiktoken to read gpt2.tiktoken")
    from pathlib import Path

    import whisper
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(whisper.__file__).parent / "assets" / "gpt2.tiktoken"
    backend = TikTokenConverter(vocab_file=str(path), extra_special_tokens=["<|endoftext|>"]).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    assert len(tok) == 50257
    return tok


@pytest.fixture(scope="module")
def corpora(shared_data):
    import json

    def first(name, n):
        with open(shared_data / name, encoding="utf-8") as f:
            return [json.loads(line) for _, line in zip(range(n), f, strict=False)]

    parallel = first("parallel-ba-ru-en.jsonl", 100)
    return {"train": [d["text"] for d in first("corpus-train.jsonl", 200)],
            "held": [d["text"] for d in first("corpus-valid.jsonl", 100)],
            "ru": [d["ru"] for d in parallel], "en": [d["en"] for d in parallel]}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, corpora):
    import warnings

    build = {"llama_style": _llama_style_tokenizer, "mistral_v1": lambda: _mistral_v1(False),
             "mistral_v1_legacy": lambda: _mistral_v1(True), "gpt2_tiktoken": _gpt2_tiktoken}[request.param]
    tok = build()
    model = la.build_tiny_model("llama", vocab_size=len(tok), hidden_size=8, num_layers=1, num_heads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no round-trip or shortfall warning
        m2, t2, info = la.extend_vocabulary(model, tok, corpora["train"], max_new_tokens=N_NEW,
                                            fertility_texts=corpora["held"])
    return request.param, tok, model, m2, t2, info


def test_family_adds_what_was_asked(family):
    _, tok, _, model, new_tok, info = family
    assert info.method == "bpe_model" and not info.shortfall and not info.unreachable
    assert len(info.added_tokens) == len(set(info.added_tokens)) == N_NEW == info.counts["added"]
    assert info.new_token_ids == list(range(len(tok), len(tok) + N_NEW))
    assert len(new_tok) == len(tok) + N_NEW == model.get_input_embeddings().weight.shape[0]
    old_vocab, new_vocab = tok.get_vocab(), new_tok.get_vocab()
    assert all(new_vocab[t] == i for t, i in old_vocab.items())  # old ids unchanged
    assert set(new_vocab) - set(old_vocab) == set(info.added_tokens)  # no duplicate of an old piece
    assert new_tok.added_tokens_decoder.keys() == tok.added_tokens_decoder.keys()  # no AddedToken
    for t, i in zip(info.added_tokens, info.new_token_ids, strict=True):
        assert _model_pieces(new_tok, t) == [i]  # reachable: the model builds it from its own text
    c = info.counts
    assert c["candidates"] == c["below_min_frequency"] + c["no_saving"] + c["unbuildable"] + c["eligible"]


def test_family_round_trips_every_text_the_base_did(family, corpora):
    _, tok, _, _, new_tok, info = family
    texts = corpora["held"] + corpora["ru"] + corpora["en"]

    def rt(t, x):
        return t.decode(t(x, add_special_tokens=False)["input_ids"]) == x

    base_ok = [x for x in texts if rt(tok, x)]
    assert len(base_ok) >= 0.9 * len(texts)  # the check has texts to fail on
    assert [x for x in base_ok if not rt(new_tok, x)] == []
    assert info.roundtrip_ok
    # new merges rank after the base's, so no text of the base languages gets longer
    for x in corpora["ru"] + corpora["en"]:
        assert len(new_tok(x)["input_ids"]) <= len(tok(x)["input_ids"])


def test_family_fertility_falls_on_held_out(family, corpora):
    _, tok, _, _, new_tok, info = family
    held = corpora["held"]
    words = sum(len(x.split()) for x in held)
    before = [tok(x, add_special_tokens=False)["input_ids"] for x in held]
    after = [new_tok(x, add_special_tokens=False)["input_ids"] for x in held]
    assert (info.tokens_before, info.tokens_after) == (sum(map(len, before)), sum(map(len, after)))
    assert info.fertility_before == pytest.approx(info.tokens_before / words)
    assert info.fertility_after < 0.85 * info.fertility_before
    used = {i for ids in after for i in ids if i >= len(tok)}
    assert len(used) >= 0.8 * N_NEW  # the new pieces are emitted on text they were not learnt from


def test_family_new_rows_are_mean_of_pieces(family):
    name, tok, old_model, model, _, info = family
    _check_mean_of_pieces(old_model, model, info, tok)
    old_out, new_out = old_model.get_output_embeddings().weight, model.get_output_embeddings().weight
    for t, i in zip(info.added_tokens[:50], info.new_token_ids[:50], strict=True):
        torch.testing.assert_close(new_out[i], old_out[info.pieces[t]].mean(0))
    if name.startswith("mistral"):  # second method: SentencePiece itself cuts a word-initial piece the same way
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(_mistral_model_file()))
        words = [t for t in info.added_tokens if t.startswith("▁") and len(t) > 1]
        assert len(words) > 20
        for t in words:
            assert sp.encode(t[1:]) == info.pieces[t], t


def test_shortfall_is_explained_with_counts():
    tok = _llama_style_tokenizer()
    model = la.build_tiny_model("llama", vocab_size=len(tok), hidden_size=8, num_layers=1, num_heads=2)
    with pytest.warns(UserWarning, match=r"added \d+ of 3000 tokens: .*min_frequency=2"):
        _, new_tok, info = la.extend_vocabulary(model, tok, BA, max_new_tokens=3000)
    c = info.counts
    assert 0 < len(info.added_tokens) == c["added"] < 3000 and len(new_tok) == len(tok) + c["added"]
    assert c["below_min_frequency"] > 0 and f"{c['below_min_frequency']} were emitted fewer" in info.shortfall
    assert c["candidates"] == c["below_min_frequency"] + c["no_saving"] + c["unbuildable"] + c["eligible"]
    # every eligible candidate is in (as itself or as a step of another), so the shortfall is the candidates'
    assert c["added"] - c["added_as_merge_steps"] <= c["eligible"] and c["over_budget"] == 0
    assert info.roundtrip_ok and info.fertility_after < info.fertility_before

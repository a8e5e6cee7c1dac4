"""Packing documents into training blocks: isolated (the default) and concatenated (the old blocks).

Every expected value is built a second way: streams and position ids by a plain loop over tokens,
a packed document's logits by running the document alone, the trained context by the evaluator's
own scoring.
"""

from __future__ import annotations

import math
import warnings

import pytest

import lowres_adapt as la
from lowres_adapt.data import document_start_id, ignored_labels, pack_documents, pack_texts
from lowres_adapt.recipes import _trainer

DOCS = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15, 16], [17], [18, 19, 20, 21]]


def _old_pack(token_ids, block_size, eos_id, drop_last=True):
    """The blocks of releases before isolated packing, written out again: EOS after each, cut equal."""
    stream = [t for ids in token_ids for t in [*ids, *([eos_id] if eos_id is not None else [])]]
    blocks = [stream[i:i + block_size] for i in range(0, len(stream), block_size)]
    return [b for b in blocks if len(b) == block_size or not drop_last]


def _brute_positions(token_ids, block_size, eos_id, bos_id):
    """Position ids by a loop over tokens: 0 at a block's first token and at each document's start."""
    stream, doc_of = [], []
    for k, ids in enumerate(token_ids):
        shared = bos_id is not None and bos_id == eos_id and k > 0
        if bos_id is not None and not shared:
            stream.append(bos_id)
            doc_of.append(k)
        if shared:
            doc_of[-1] = k  # the EOS that closed document k-1 opens document k
        stream += list(ids)
        doc_of += [k] * len(ids)
        if eos_id is not None:
            stream.append(eos_id)
            doc_of.append(k)
    positions, pos = [], 0
    for i in range(len(stream)):
        pos = 0 if i % block_size == 0 or doc_of[i] != doc_of[i - 1] else pos + 1
        positions.append(pos)
    n = len(stream) // block_size * block_size
    cut = [stream[i:i + block_size] for i in range(0, n, block_size)]
    return cut, [positions[i:i + block_size] for i in range(0, n, block_size)]


@pytest.mark.parametrize("block_size", [1, 3, 4, 7])
@pytest.mark.parametrize("eos_id", [0, None])
def test_concatenated_blocks_are_the_old_blocks(block_size, eos_id):
    for drop_last in (True, False):
        blocks, stats = pack_documents(DOCS, block_size, eos_id, drop_last=drop_last)
        assert blocks == _old_pack(DOCS, block_size, eos_id, drop_last)
    assert stats["n_tokens"] == sum(map(len, DOCS)) + (len(DOCS) if eos_id is not None else 0)


@pytest.mark.parametrize("block_size", [2, 3, 5, 8])
@pytest.mark.parametrize("eos_id, bos_id", [(0, 1), (0, 0), (0, None), (None, 1)])
def test_position_ids_restart_at_documents_and_blocks(block_size, eos_id, bos_id):
    blocks, positions, stats = pack_documents(DOCS, block_size, eos_id, bos_id=bos_id, return_position_ids=True)
    want_blocks, want_positions = _brute_positions(DOCS, block_size, eos_id, bos_id)
    assert blocks == want_blocks and positions == want_positions
    assert stats["n_tokens"] == len(want_blocks) * block_size + stats["dropped_tokens"]


def test_a_cut_document_goes_on_from_zero_in_the_next_block():
    blocks, positions, _ = pack_documents([[1, 2, 3, 4, 5, 6]], 4, 0, bos_id=9, return_position_ids=True)
    assert blocks == [[9, 1, 2, 3], [4, 5, 6, 0]]
    assert positions == [[0, 1, 2, 3], [0, 1, 2, 3]]
    blocks, positions, _ = pack_documents([[1, 2], [3, 4, 5, 6, 7]], 4, 0, bos_id=9, return_position_ids=True)
    assert blocks == [[9, 1, 2, 0], [9, 3, 4, 5]] and positions == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_bad_packing_and_block_size_are_refused():
    with pytest.raises(ValueError, match="block_size"):
        pack_documents(DOCS, 0)
    tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300)
    with pytest.raises(ValueError, match="packing must be one of.*did you mean 'isolated'"):
        pack_texts(tok, la.sample_corpus("ba"), 32, packing="isolate")


# ------------------------------------------------------------------------------------ BOS and labels
@pytest.fixture(scope="module", params=["byte_bpe", "llama_bpe"])
def tokenizer(request):
    return la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300, kind=request.param)


def test_each_document_starts_with_the_start_token_and_labels_stop_at_boundaries(tokenizer):
    docs = la.sample_corpus("ba")[:8]
    ds, stats = pack_texts(tokenizer, docs, 64, packing="isolated")
    start, eos = document_start_id(tokenizer), tokenizer.eos_token_id
    assert start == (tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos)
    ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
    want_blocks, want_pos = _brute_positions(ids, 64, eos, start)
    assert ds["input_ids"] == want_blocks and ds["position_ids"] == want_pos
    batch = _trainer.collator(tokenizer, "isolated", start)([ds[i] for i in range(len(ds))])
    assert "attention_mask" not in batch and batch["use_cache"] is False
    x, pos, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    n_starts = 0
    for b in range(x.shape[0]):
        for t in range(1, x.shape[1]):  # (a block's first label is never used: the model shifts labels)
            if pos[b, t] == 0:  # a document starts inside the block ...
                n_starts += 1
                assert x[b, t] == start  # ... with the token the evaluator conditions on,
                assert eos in (x[b, t - 1], x[b, t])  # ... where the one before ended with EOS,
                assert labels[b, t] == start  # ... and the constant start token stays a target
            else:
                assert pos[b, t] == pos[b, t - 1] + 1 and labels[b, t] == x[b, t]
    assert n_starts >= 3
    # without a start token, a document's first token is never a target
    no_start = ignored_labels(x, pos, None)
    assert no_start.sum() == (pos == 0).sum()


def test_evaluation_and_training_condition_a_document_on_the_same_token(tokenizer):
    """The training loss of a document inside an isolated block equals the evaluator's NLL of it."""
    import torch
    import torch.nn.functional as F

    from lowres_adapt.evaluation import _common

    docs = [d[:120] for d in la.sample_corpus("ba")[:4]]
    assert document_start_id(tokenizer) == _common.prefix_token_id(tokenizer)
    model = la.build_tiny_model("llama", tokenizer, hidden_size=32, num_heads=2, max_positions=256).eval()
    ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
    block = sum(len(i) + 2 for i in ids)  # one block holds them all
    blocks, pos, _ = pack_documents(ids, block, tokenizer.eos_token_id, bos_id=document_start_id(tokenizer),
                                    return_position_ids=True, drop_last=False)
    x, p = torch.tensor(blocks), torch.tensor(pos)
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=x, position_ids=p, use_cache=False).logits[0].double(), -1)
    token_nll = -logp[:-1].gather(1, x[0, 1:, None])[:, 0]  # token t+1 predicted at t
    result = la.PerplexityEvaluator(progress=False, bootstrap_samples=0).evaluate(model, tokenizer, docs)
    shared = tokenizer.bos_token_id == tokenizer.eos_token_id  # one token ends a document and opens the next
    first = 1  # where document k's first token sits in the block
    for k, doc in enumerate(ids):
        trained = float(token_nll[first - 1:first - 1 + len(doc)].sum())
        assert trained == pytest.approx(result.per_document[k]["nll"], rel=1e-5)
        first += len(doc) + (1 if shared else 2)


# ------------------------------------------------------------------------------------ architectures
_COMMON = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
ARCHITECTURES = {
    "gpt2": dict(vocab_size=97, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2),
    "llama": _COMMON,
    "mistral": dict(_COMMON, sliding_window=6),  # shorter than a document: sliding and packed masks combine
    "qwen2": _COMMON,
    "qwen3": dict(_COMMON, head_dim=8),
    "phi": _COMMON,
    "gemma2": dict(_COMMON, head_dim=8, sliding_window=6),
    "gemma3_text": dict(_COMMON, head_dim=8, sliding_window=6),
}


def _tiny(model_type: str, attn: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **ARCHITECTURES[model_type])
    torch.manual_seed(0)
    try:
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()
    except ValueError as e:
        if "does not support" in str(e):  # transformers: Gemma2 has no sdpa attention
            pytest.skip(f"transformers has no {attn} attention for {model_type}")
        raise


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_a_packed_document_has_its_logits_alone(model_type, attn):
    import torch

    model = _tiny(model_type, attn)
    gen = torch.Generator().manual_seed(1)
    docs = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in (9, 4, 13, 7)]
    blocks, pos, _ = pack_documents(docs, 40, 2, bos_id=1, return_position_ids=True)
    x, p = torch.tensor(blocks), torch.tensor(pos)
    with torch.no_grad():
        packed = model(input_ids=x, position_ids=p, use_cache=False).logits[0]
        start = 0
        for doc in docs:
            alone_ids = torch.tensor([[1, *doc, 2]])
            alone = model(input_ids=alone_ids, use_cache=False).logits[0]
            n = min(alone.shape[0], 40 - start)
            torch.testing.assert_close(packed[start:start + n], alone[:n], atol=1e-5, rtol=1e-5)
            start += len(doc) + 2
            # and the same block concatenated lets the document see the one before: logits change
        cat = model(input_ids=x, use_cache=False).logits[0]
        assert (cat[len(docs[0]) + 2:] - packed[len(docs[0]) + 2:]).abs().max() > 1e-3
    assert _trainer.isolation_failure(model) is None


def test_an_attention_that_ignores_position_ids_falls_back_to_concatenated(tiny_llama_path, ba_docs, tmp_path):
    """A kernel that only knows causal attention (as an external one may) cannot isolate documents:
    the probe says so, and training warns and runs concatenated instead of silently contaminated."""
    import torch.nn.functional as F
    from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer

    def causal_only(module, query, key, value, attention_mask, **kwargs):
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=kwargs.get("scaling"))
        return out.transpose(1, 2).contiguous(), None

    AttentionInterface.register("causal_only_test", causal_only)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, attn_implementation="causal_only_test")
    assert "attend to the one before" in _trainer.isolation_failure(model)
    with pytest.warns(UserWarning, match="packing='concatenated'"):
        run = la.FullFineTuning().train(model, ba_docs[:6], tokenizer=AutoTokenizer.from_pretrained(tiny_llama_path),
                                        output_dir=tmp_path, max_steps=1, block_size=32, batch_size=2)
    assert run.metrics["packing"] == "concatenated" and "attend" in run.metrics["packing_fallback"]
    assert run.metrics["document_start_id"] is None


# ------------------------------------------------------------------------------------ the recipes
def test_recipe_trains_isolated_by_default_and_concatenated_on_request(tiny_gpt2_path, tiny_tokenizer, ba_docs,
                                                                       tmp_path):
    docs = ba_docs[:6]
    fast = dict(max_steps=2, block_size=32, batch_size=2, logging_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback warning for GPT-2
        iso = la.FullFineTuning().train(tiny_gpt2_path, docs, docs[:2], output_dir=tmp_path / "i", **fast)
    cat = la.FullFineTuning().train(tiny_gpt2_path, docs, docs[:2], output_dir=tmp_path / "c", packing="concatenated",
                                    **fast)
    assert iso.metrics["packing"] == "isolated" and iso.metrics["packing_fallback"] is None
    assert iso.metrics["document_start_id"] == tiny_tokenizer.eos_token_id  # its BOS is its EOS
    assert cat.metrics["packing"] == "concatenated" and cat.metrics["document_start_id"] is None
    ids = [tiny_tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
    assert cat.metrics["train_blocks"] == len(_old_pack(ids, 32, tiny_tokenizer.eos_token_id))
    assert math.isfinite(iso.metrics["eval_loss"]) and iso.metrics["eval_loss"] != cat.metrics["eval_loss"]
    with pytest.raises(ValueError, match="packing must be one of"):
        la.FullFineTuning().train("no/such/model", docs, packing="none")


def test_staged_causal_stages_pack_isolated(tiny_gpt2_path, ba_docs, tmp_path):
    staged = la.StagedRecipe(la.LoRA(r=2), [la.Stage("c"), la.Stage("c2", training_args={"packing": "concatenated"})])
    run = staged.train(tiny_gpt2_path, ba_docs[:6], output_dir=tmp_path, max_steps=1, block_size=32, batch_size=2)
    assert [s["packing"] for s in run.metrics["stages"]] == ["isolated", "concatenated"]
    bad = la.StagedRecipe(la.LoRA(r=2), [la.Stage("c"), la.Stage("c2", training_args={"packing": "nope"})])
    with pytest.raises(ValueError, match="packing must be one of"):
        bad.train(tiny_gpt2_path, ba_docs[:6], output_dir=tmp_path / "bad", max_steps=1, block_size=32, batch_size=2)
    assert not (tmp_path / "bad" / "stages").exists()  # refused before the first stage trained


@pytest.mark.parametrize("eos_id, bos_id", [(0, 1), (0, 0), (0, None), (None, 1), (None, None)])
def test_random_documents_match_the_loop(eos_id, bos_id):
    import random

    rng = random.Random(0)
    docs = [[rng.randrange(2, 50) for _ in range(rng.randrange(0, 30))] for _ in range(40)]  # empty ones too
    for block in (1, 7, 64):
        blocks, positions, stats = pack_documents(docs, block, eos_id, bos_id=bos_id, return_position_ids=True)
        assert (blocks, positions) == _brute_positions(docs, block, eos_id, bos_id)
        if bos_id is None:
            assert blocks == pack_documents(docs, block, eos_id)[0]  # position ids change nothing else


# ------------------------------------------------------------------------------------ the study
def test_study_fingerprint_holds_the_packing(tmp_path, tiny_tokenizer):
    from types import SimpleNamespace

    from lowres_adapt.errors import StudyConfigError
    from lowres_adapt.study._folder import check_folder
    from lowres_adapt.study._inputs import _hash

    def study(**kw):
        return la.Study(models=["tiny:gpt2"], recipes=["lora"], seeds=[0], corpus=la.sample_corpus("ba"),
                        output_dir=tmp_path / "s", max_steps=1, **kw)

    iso, cat = study(), study(packing="concatenated")
    data = iso._load_data()
    s_iso, s_cat = iso._settings(data), cat._settings(data)
    assert s_iso.pop("packing") == "isolated" and s_iso == s_cat  # an old study's settings are the concatenated ones
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(
        __import__("json").dumps({"settings_fingerprint": _hash(s_cat), "settings": s_cat}), encoding="utf-8")
    assert check_folder(tmp_path / "s", s_cat, _hash(s_cat)) is not None  # resumes with packing="concatenated"
    s_iso = iso._settings(data)
    with pytest.raises(StudyConfigError, match="packing: null -> \"isolated\""):
        check_folder(tmp_path / "s", s_iso, _hash(s_iso))
    with pytest.raises(StudyConfigError, match="did you mean 'isolated'"):
        study(packing="isolate")
    # the study trains with its packing, and its report says what started each document
    spec = SimpleNamespace(recipe=SimpleNamespace(train=lambda *a, **k: k), seed=0)
    assert iso._train(spec, "m", data, tmp_path)["packing"] == "isolated"
    start = iso._document_start(tiny_tokenizer)
    assert start["has_bos"] and start["bos_is_eos"] and start["used_in_training"]
    llama_tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300, kind="llama_bpe")
    no_bos = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300, kind="llama_bpe")
    no_bos.bos_token = None
    results = la.StudyResults([], diagnostics={
        "gpt2-like": {"report": {"document_start": start}},
        "llama-like": {"report": {"document_start": cat._document_start(llama_tok)}},
        "no-bos": {"report": {"document_start": iso._document_start(no_bos)}}})
    text = results._diagnostics_markdown()
    assert "- gpt2-like: BOS `<|endoftext|>` (the same token as EOS); training (isolated packing) and " in text
    assert "- llama-like: BOS `<s>`; evaluation conditions every document on it; training (packing " \
           "'concatenated') does not" in text
    assert "- no-bos: no BOS; EOS `</s>` stands in for it; training (isolated packing)" in text

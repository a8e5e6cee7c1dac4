"""How the new rows of an extended vocabulary start (``extend_vocabulary(init=...)``), checked against
independent computations, and the property that matters: "mean"/"merge" rows cost nothing before training."""

from __future__ import annotations

import json

import pytest
import torch

import lowres_adapt as la
from lowres_adapt.tokenization import _rows
from test_vocab import BA, RU


@pytest.fixture(scope="module")
def ru_tok():
    return la.train_tokenizer(RU, vocab_size=300)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def base(request, ru_tok):
    return la.build_tiny_model(request.param, ru_tok, hidden_size=16, num_layers=1, num_heads=2)


@pytest.fixture(scope="module")
def extended(base, ru_tok):
    """{init: (model, tokenizer, info)} for every init, 40 tokens."""
    return {init: la.extend_vocabulary(base, ru_tok, BA, max_new_tokens=40, vocab_size=500, init=init, seed=3)
            for init in la.tokenization.vocab.INITS}


def _tables(model):
    """The row tables an init writes: the input embedding and, when untied, the head (and its bias)."""
    emb, out = model.get_input_embeddings(), model.get_output_embeddings()
    tables = [emb.weight.detach()]
    if out.weight.data_ptr() != emb.weight.data_ptr():
        tables.append(out.weight.detach())
    return tables


def test_every_init_keeps_old_rows_and_records_itself(extended, base, ru_tok):
    old = _tables(base)
    for init, (model, tok, info) in extended.items():
        assert info.init == init and info.init_seed == 3
        assert info.added_tokens == extended["mean"][2].added_tokens  # the init does not change the tokens
        for before, after in zip(old, _tables(model), strict=True):
            assert torch.equal(after[:len(ru_tok)], before)
            assert after.shape[0] == len(tok)
    tied = len(old) == 1
    assert tied == (base.config.model_type == "gpt2")


def test_merge_rows_are_the_mean_of_the_two_parents_of_the_first_merge(extended, base, ru_tok):
    model, tok, info = extended["merge"]
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    vocab = tok.get_vocab()
    n_two_level = 0
    for table, old in zip(_tables(model), _tables(base), strict=True):
        for token, i in zip(info.added_tokens, info.new_token_ids, strict=True):
            first = next((m for m in merges if m[0] + m[1] == token), None)  # brute force over all merges
            if first is None:
                assert token in info.init_fallback
                continue
            assert info.merge_parents[token] == list(first)
            left, right = (vocab[p] for p in first)
            # a new parent's own row was built first (merge order); an old parent's row is the base's
            rows = [table[j] if j >= len(ru_tok) else old[j] for j in (left, right)]
            torch.testing.assert_close(table[i], (rows[0] + rows[1]) / 2, rtol=0, atol=1e-6)
            n_two_level += left >= len(ru_tok) or right >= len(ru_tok)
    assert len(info.merge_parents) + len(info.init_fallback) == len(info.added_tokens)
    assert n_two_level > 0  # some new tokens are built on new tokens: the recursion is exercised


def test_merge_differs_from_mean_only_where_the_tree_is_deeper_than_one_merge(extended, ru_tok):
    mean_model, _, info = extended["mean"]
    merge_model, tok, _ = extended["merge"]
    emb_mean, emb_merge = mean_model.get_input_embeddings().weight, merge_model.get_input_embeddings().weight
    vocab = tok.get_vocab()
    same = differ = 0
    for token, i in zip(info.added_tokens, info.new_token_ids, strict=True):
        parents = extended["merge"][2].merge_parents.get(token)
        if parents and all(vocab[p] < len(ru_tok) for p in parents) and len(info.pieces[token]) == 2:
            torch.testing.assert_close(emb_merge[i], emb_mean[i], rtol=0, atol=1e-6)  # one merge of two old pieces
            same += 1
        elif len(info.pieces[token]) > 2:
            differ += not torch.allclose(emb_merge[i], emb_mean[i], atol=1e-6)
    assert same > 0 and differ > 0


def test_covariance_draws_follow_the_old_rows_mean_and_scaled_covariance(ru_tok):
    # Many draws on a small model: their mean and covariance estimate the distribution they came from.
    model = la.build_tiny_model("llama", vocab_size=300, hidden_size=8, num_layers=1, num_heads=2)
    old = model.get_input_embeddings().weight.detach().clone().double()
    n_new = 20000
    model.resize_token_embeddings(300 + n_new, mean_resizing=False)
    ids = list(range(300, 300 + n_new))
    _rows.init_rows(model, ids, [[]] * n_new, 300, "covariance", seed=0)
    new = model.get_input_embeddings().weight.detach()[300:].double()
    mean = old.mean(0)
    cov = (old - mean).T @ (old - mean) / old.shape[0]
    scale = _rows.COVARIANCE_SCALE
    draws = (new - mean) / scale**0.5
    torch.testing.assert_close(draws.mean(0), torch.zeros(8, dtype=torch.float64), rtol=0, atol=0.01)
    # float32 storage of rows ~0.1 leaves ~1e-8 rounding on draws of ~1e-5: a few percent of tolerance
    torch.testing.assert_close(draws.T @ draws / n_new, cov, rtol=0, atol=0.1 * cov.diag().max().item())
    # transformers' own resize (mean_resizing=True) draws from the same distribution: same mean
    hf = la.build_tiny_model("llama", vocab_size=300, hidden_size=8, num_layers=1, num_heads=2)
    hf.load_state_dict({k: v for k, v in model.state_dict().items() if "embed" not in k and "lm_head" not in k},
                       strict=False)
    hf.get_input_embeddings().weight.data.copy_(old.float())
    torch.manual_seed(0)
    hf.resize_token_embeddings(300 + 200, mean_resizing=True)
    hf_new = hf.get_input_embeddings().weight.detach()[300:].double()
    torch.testing.assert_close(hf_new.mean(0), new[:200].mean(0), rtol=0, atol=1e-4)


def test_random_is_small_normal_and_seeded(extended, base, ru_tok):
    model, _, info = extended["random"]
    rows = model.get_input_embeddings().weight.detach()[info.new_token_ids]
    std = base.config.initializer_range
    assert abs(rows.std().item() - std) < 0.2 * std and abs(rows.mean().item()) < 0.2 * std
    again, _, _ = la.extend_vocabulary(base, ru_tok, BA, max_new_tokens=40, vocab_size=500, init="random", seed=3)
    other, _, _ = la.extend_vocabulary(base, ru_tok, BA, max_new_tokens=40, vocab_size=500, init="random", seed=4)
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert not torch.equal(other.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_init_new_embeddings_matches_extend_vocabulary(extended, base):
    _, tok, info = extended["mean"]
    for init in ("merge", "covariance"):
        again = la.tokenization.init_new_embeddings(base, tok, info, init, seed=3)
        assert torch.equal(again.get_input_embeddings().weight, extended[init][0].get_input_embeddings().weight)


def test_bad_init_is_refused_before_any_model_work(ru_tok):
    with pytest.raises(ValueError, match=r"unknown init 'fvt'; known inits: 'mean', 'merge', 'covariance', 'random'"):
        la.extend_vocabulary(object(), ru_tok, BA, init="fvt")
    with pytest.raises(ValueError, match=r"did you mean 'merge'"):
        la.extend_vocabulary(object(), ru_tok, BA, init="merges")
    # "merge" without merges: the message says why and names the inits that work; object() is never touched
    wordpiece = la.train_tokenizer(RU, vocab_size=100, kind="wordpiece")
    with pytest.raises(ValueError, match=r"WordPiece tokenizer has no merges.*'mean', 'covariance', 'random'"):
        la.extend_vocabulary(object(), wordpiece, BA, init="merge")
    with pytest.raises(ValueError, match=r"added tokens, which no merge creates.*'mean', 'covariance', 'random'"):
        la.extend_vocabulary(object(), ru_tok, new_tokens=[" һәм"], init="merge")
    with pytest.raises(ValueError, match="seed must be an integer"):
        la.extend_vocabulary(object(), ru_tok, BA, init="random", seed="0")


def test_inits_that_need_no_merges_work_on_added_tokens_and_wordpiece(ru_tok):
    wordpiece = la.train_tokenizer(RU, vocab_size=100, kind="wordpiece")
    model = la.build_tiny_model("llama", vocab_size=len(wordpiece), hidden_size=16, num_layers=1, num_heads=2)
    m2, t2, info = la.extend_vocabulary(model, wordpiece, new_tokens=["һәм"], init="covariance")
    assert info.method == "added_tokens" and info.init == "covariance" and len(t2) == len(wordpiece) + 1
    old = model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(m2.get_input_embeddings().weight[-1].detach(), old.mean(0), rtol=0, atol=1e-3)


def test_mean_and_merge_rows_cost_nothing_before_training(mini_gpt2_ru):
    """On held-out Bashkir text the untrained extended model is no worse than the base, in bits per byte."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    docs = la.sample_corpus("ba")
    held_out, train = docs[::8], [d for k, d in enumerate(docs) if k % 8]  # 6 held-out documents, 39 to learn from
    base = AutoModelForCausalLM.from_pretrained(mini_gpt2_ru).eval()
    tok = AutoTokenizer.from_pretrained(mini_gpt2_ru)
    evaluator = la.PerplexityEvaluator(max_length=128, bootstrap_samples=0, progress=False)
    before = evaluator.evaluate(base, tok, held_out).bits_per_byte
    model, tok2, info = la.extend_vocabulary(base, tok, train, max_new_tokens=100, init="mean")
    scores = {"mean": evaluator.evaluate(model.eval(), tok2, held_out).bits_per_byte}
    merged = la.tokenization.init_new_embeddings(base, tok2, info, "merge").eval()
    scores["merge"] = evaluator.evaluate(merged, tok2, held_out).bits_per_byte
    assert info.fertility_after < info.fertility_before
    for init, bpb in scores.items():
        assert bpb <= before, (init, bpb, before)

"""PerplexityEvaluator: window contract (against an independent lm-eval reimplementation), totals
(against a brute-force token-by-token loop and the model's own loss), pooling, bootstrap, comparison.

Everything runs on tiny models and tokenizers built in-process; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import lowres_adapt as la
from lowres_adapt.evaluation._windows import window_spans, window_tokens

SENTENCES = [
    "Башҡортостан Республикаһы Урал тауҙарының көньяҡ өлөшөндә урынлашҡан.",
    "Ағиҙел йылғаһы буйында борондан башҡорт ырыуҙары йәшәгән.",
    "Мин башҡорт телен өйрәнәм, ә һеҙ ниндәй телдә һөйләшәһегеҙ?",
    "Ҡышҡы көндәрҙә ҡар күп яуа, балалар саңғыла шыуа.",
    "Өфө ҡалаһында театрҙар, музейҙар һәм китапханалар бар.",
    "Әсәйем иртән һөт һауҙы, атайым бесән сапты.",
    "Ҡурай моңо тыңлаусыларҙың күңелен иретә.",
    "Был китапты мин үткән йәй уҡып сыҡтым.",
]
SHORT_DOCS = ["Ҡурай моңо.", "Мин башҡорт телен өйрәнәм.", "Өфө", " ҡар  яуа\nбалалар "]
LONG_DOCS = [" ".join(SENTENCES[:3]), " ".join(SENTENCES[3:5])]  # 149 and 83 tokens: partial last windows
MAX_LEN = 12  # window length used for long documents (the tiny models allow 64 positions)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The models here are tiny: extra threads only spin on a shared, loaded CPU (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    return la.train_tokenizer(SENTENCES * 3, vocab_size=300)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tok):
    return la.build_tiny_model(request.param, tok, hidden_size=32, num_layers=2, num_heads=2,
                               max_positions=64).eval()


@pytest.fixture(scope="module")
def gpt2(tok):
    return la.build_tiny_model("gpt2", tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=64).eval()


def evaluator(**kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("bootstrap_samples", 0)
    return la.PerplexityEvaluator(**kwargs)


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


# --- references written independently of the library ------------------------------------------------

def lm_eval_rolling_windows(tokens, prefix, max_seq_len, context_len=1):
    """lm-evaluation-harness's get_rolling_token_windows (reimplemented from its documented behaviour)."""
    if not tokens:
        return []
    pred_len = max_seq_len - context_len + 1
    first = min(max_seq_len, len(tokens))
    out = [([prefix] + tokens[: first - 1], tokens[:first])]
    predicted = first
    while predicted < len(tokens):
        n_pred = min(len(tokens) - predicted, pred_len)
        end = predicted + n_pred
        out.append((tokens[end - max_seq_len - 1 : end - 1], tokens[end - n_pred : end]))
        predicted += n_pred
    return out


def lm_eval_model_inputs(tokens, prefix, max_len):
    """(model input, scored continuation) as lm-eval's HF model builds them after make_disjoint_window."""
    out = []
    for context, continuation in lm_eval_rolling_windows(tokens, prefix, max_len):
        context = context[: len(context) - (len(continuation) - 1)]  # make_disjoint_window
        full = (context + continuation)[-(max_len + 1):]
        out.append((full[:-1], continuation))
    return out


def brute_force_nll(model, tokens, prefix, max_len, stride=None):
    """(Needs the model in eval mode: dropout off.)
    Σ nll scoring one token per forward pass, each with the context the contract allows it:
    targets are cut into a first chunk of max_len tokens, then chunks of `stride`; a token in the chunk
    that ends at b sees [prefix] + tokens, cut to start at max(0, b - max_len)."""
    step = stride or max_len
    ends, b = [], min(max_len, len(tokens))
    while len(tokens) and (not ends or ends[-1] < len(tokens)):
        ends.append(b)
        b = min(b + step, len(tokens))
    seq = [prefix] + list(tokens)
    total = 0.0
    with torch.no_grad():
        for i, target in enumerate(tokens):
            b = next(e for e in ends if e > i)
            context = seq[max(0, b - max_len) : i + 1]
            logits = model(input_ids=torch.tensor([context])).logits[0, -1].double()
            total -= float(torch.log_softmax(logits, -1)[target])
    return total


# --- window contract ----------------------------------------------------------------------------------

def test_lm_eval_reference_reproduces_the_harness_gold():
    # Gold output of lm-eval's own unit test (prefix -100, max_seq_len 10, context_len 1, 34 tokens).
    gold = [
        ([-100, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ([9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]),
        ([19, 20, 21, 22, 23, 24, 25, 26, 27, 28], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]),
        ([23, 24, 25, 26, 27, 28, 29, 30, 31, 32], [30, 31, 32, 33]),
    ]
    assert lm_eval_rolling_windows(list(range(34)), -100, 10) == gold
    ours = [window_tokens(list(range(34)), -100, s) for s in window_spans(34, 10)]
    assert ours == gold  # the disjoint-window model inputs are the rolling contexts themselves here


@pytest.mark.parametrize("max_len", [1, 2, 3, 4, 7, 10])
def test_windows_equal_lm_eval_rolling_loglikelihood(max_len):
    for n in range(0, 40):
        tokens = list(range(100, 100 + n))
        ours = [window_tokens(tokens, -1, s) for s in window_spans(n, max_len)]
        assert ours == lm_eval_model_inputs(tokens, -1, max_len), (n, max_len)


@pytest.mark.parametrize("max_len,stride", [(1, 1), (4, 1), (4, 2), (4, 3), (10, 4), (10, 10)])
def test_strided_windows_score_every_token_once_with_more_context(max_len, stride):
    for n in range(0, 30):
        tokens = list(range(100, 100 + n))
        seq = [-1] + tokens
        scored = []
        for start, end, n_scored in window_spans(n, max_len, stride):
            inputs, targets = window_tokens(tokens, -1, (start, end, n_scored))
            assert len(inputs) <= max_len and inputs == seq[start:end]
            assert targets == seq[end - n_scored + 1 : end + 1]  # the last n_scored positions predict these
            if start > 0:  # after the first window, every target has at least max_len - stride context
                assert len(inputs) - n_scored >= max_len - stride
            scored += targets
        assert scored == tokens


def test_window_arguments_are_checked():
    with pytest.raises(ValueError, match="stride"):
        window_spans(10, 4, stride=5)
    with pytest.raises(ValueError, match="max_length"):
        window_spans(10, 0)


# --- totals against brute force -------------------------------------------------------------------------

@pytest.mark.parametrize("docs,stride", [(SHORT_DOCS, None), (LONG_DOCS, None), (LONG_DOCS, 5)],
                         ids=["short", "long-disjoint", "long-strided"])
def test_total_equals_brute_force_token_by_token(model, tok, docs, stride):
    res = evaluator(max_length=MAX_LEN, stride=stride, batch_size=4).evaluate(model, tok, docs)
    expected = [brute_force_nll(model, encode(tok, d), tok.bos_token_id, MAX_LEN, stride) for d in docs]
    assert res.n_tokens == sum(len(encode(tok, d)) for d in docs)
    if docs is LONG_DOCS:
        assert min(len(encode(tok, d)) for d in docs) > 4 * MAX_LEN  # really several windows
    assert [r["nll"] for r in res.per_document] == pytest.approx(expected, rel=1e-4)
    assert res.total_nll == pytest.approx(sum(expected), rel=1e-4)


def test_strided_differs_from_disjoint(gpt2, tok):
    # More context changes the numbers (the same tokens are scored, with different contexts).
    a = evaluator(max_length=MAX_LEN).evaluate(gpt2, tok, LONG_DOCS)
    b = evaluator(max_length=MAX_LEN, stride=4).evaluate(gpt2, tok, LONG_DOCS)
    assert a.n_tokens == b.n_tokens
    assert abs(a.total_nll - b.total_nll) > 1e-3


def test_short_document_matches_model_labels_loss(model, tok):
    text = SENTENCES[0]
    ids = [tok.bos_token_id] + encode(tok, text)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    res = evaluator().evaluate(model, tok, [text])  # max_length: the model's 64 positions
    assert res.settings["max_length"] == 64 and len(ids) <= 64
    assert res.total_nll / res.n_tokens == pytest.approx(loss, rel=1e-5)
    assert res.token_perplexity == pytest.approx(math.exp(loss), rel=1e-5)


def test_batch_size_invariance(model, tok):
    docs = SHORT_DOCS + LONG_DOCS
    r1 = evaluator(max_length=MAX_LEN, batch_size=1).evaluate(model, tok, docs)
    r16 = evaluator(max_length=MAX_LEN, batch_size=16).evaluate(model, tok, docs)
    assert r16.total_nll == pytest.approx(r1.total_nll, rel=1e-5)
    assert [r["nll"] for r in r16.per_document] == pytest.approx([r["nll"] for r in r1.per_document], rel=1e-5)


# --- metrics: pooled sums, counts -----------------------------------------------------------------------

def test_counts_and_metrics_pool_sums(gpt2, tok):
    docs = ["ҡыҙ бала", "Өфө ҡалаһы  ҙур\n", "a"]
    res = evaluator().evaluate(gpt2, tok, docs)
    assert [r["bytes"] for r in res.per_document] == [15, 28, 1]  # Cyrillic letters are 2 UTF-8 bytes
    assert [r["words"] for r in res.per_document] == [2, 3, 1]
    assert [r["chars"] for r in res.per_document] == [8, 16, 1]
    assert (res.n_bytes, res.n_words, res.n_chars, res.n_documents) == (44, 6, 25, 3)
    nll = sum(r["nll"] for r in res.per_document)
    assert res.bits_per_byte == pytest.approx(nll / (44 * math.log(2)), rel=1e-12)
    assert res.byte_perplexity == pytest.approx(2 ** res.bits_per_byte, rel=1e-12)
    assert res.word_perplexity == pytest.approx(math.exp(nll / 6), rel=1e-12)
    assert res.char_perplexity == pytest.approx(math.exp(nll / 25), rel=1e-12)
    assert res.bits_per_char == pytest.approx(nll / (25 * math.log(2)), rel=1e-12)
    assert res.token_perplexity == pytest.approx(math.exp(nll / res.n_tokens), rel=1e-12)
    mean_of_ppl = np.mean([math.exp(r["nll"] / r["tokens"]) for r in res.per_document])
    assert abs(mean_of_ppl - res.token_perplexity) > 1e-3  # pooled, not an average of perplexities


def test_empty_document_scores_nothing(gpt2, tok):
    res = evaluator().evaluate(gpt2, tok, ["", SENTENCES[1]])
    alone = evaluator().evaluate(gpt2, tok, [SENTENCES[1]])
    assert res.per_document[0] == {**res.per_document[0], "tokens": 0, "bytes": 0, "nll": 0.0}
    assert res.total_nll == pytest.approx(alone.total_nll, rel=1e-6) and res.n_documents == 2


def test_to_dict_has_the_contract_keys_and_round_trips(gpt2, tok):
    res = evaluator(max_length=MAX_LEN, bootstrap_samples=50).evaluate(gpt2, tok, SHORT_DOCS + LONG_DOCS)
    d = json.loads(json.dumps(res.to_dict()))
    for key in ("token_perplexity", "bits_per_byte", "byte_perplexity", "word_perplexity", "char_perplexity",
                "bits_per_char", "n_tokens", "n_bytes", "n_words", "n_chars", "n_documents",
                "confidence_intervals", "per_document", "max_length", "stride", "seed", "bootstrap_samples"):
        assert key in d, key
    assert d["max_length"] == MAX_LEN and d["stride"] is None and d["bootstrap_samples"] == 50
    assert d["higher_is_better"]["bits_per_byte"] is False
    assert set(d["per_document"][0]) >= {"id", "tokens", "bytes", "words", "nll"}
    back = la.PerplexityResult.from_dict(d)
    assert back.bits_per_byte == pytest.approx(res.bits_per_byte, rel=1e-12)
    assert back.confidence_intervals == d["confidence_intervals"]
    assert "| bits_per_byte |" in res.to_markdown()


# --- bootstrap and comparison ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def many_docs():
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(SENTENCES, size=int(rng.integers(1, 4)))) for _ in range(24)]


@pytest.fixture(scope="module")
def two_results(tok, many_docs):
    a_model = la.build_tiny_model("gpt2", tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=64)
    b_model = la.build_tiny_model("gpt2", tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=64,
                                  seed=1)
    ev = evaluator(bootstrap_samples=400, seed=3)
    return ev.evaluate(a_model, tok, many_docs), ev.evaluate(b_model, tok, many_docs)


def test_bootstrap_cis_are_seeded_and_cover_the_estimate(two_results, gpt2, tok, many_docs):
    a, _ = two_results
    ci = a.confidence_intervals
    assert ci["level"] == 0.95
    for name in la.evaluation.METRICS:
        low, high = ci[name]
        assert low < a.metric(name) < high, name
    assert ci["byte_perplexity"] == pytest.approx([2 ** x for x in ci["bits_per_byte"]], rel=1e-12)
    again = evaluator(bootstrap_samples=400, seed=3).evaluate(gpt2, tok, many_docs)
    other_seed = evaluator(bootstrap_samples=400, seed=4).evaluate(gpt2, tok, many_docs)
    assert again.confidence_intervals == a.confidence_intervals
    assert other_seed.confidence_intervals["bits_per_byte"] != a.confidence_intervals["bits_per_byte"]


def test_bootstrap_agrees_with_a_plain_numpy_bootstrap(two_results):
    a, _ = two_results
    nll = np.array([r["nll"] for r in a.per_document])
    nbytes = np.array([r["bytes"] for r in a.per_document])
    idx = np.random.default_rng(123).integers(0, len(nll), size=(20000, len(nll)))
    bpb = nll[idx].sum(1) / (nbytes[idx].sum(1) * math.log(2))  # pooled ratio per resample
    expected = np.percentile(bpb, [2.5, 97.5])
    width = expected[1] - expected[0]
    assert np.abs(np.array(a.confidence_intervals["bits_per_byte"]) - expected).max() < 0.1 * width


def test_identical_documents_give_a_zero_width_interval(gpt2, tok):
    res = evaluator(bootstrap_samples=100).evaluate(gpt2, tok, [SENTENCES[2]] * 5)
    low, high = res.confidence_intervals["bits_per_byte"]
    assert low == pytest.approx(res.bits_per_byte, rel=1e-9) and high == pytest.approx(res.bits_per_byte, rel=1e-9)


def test_compare_results(two_results):
    from scipy import stats

    a, b = two_results
    c = la.compare_results(a, b)
    assert c["difference"] == pytest.approx(a.bits_per_byte - b.bits_per_byte, rel=1e-12)
    low, high = c["confidence_interval"]
    assert low <= c["difference"] <= high
    pairs = zip(a.per_document, b.per_document, strict=True)
    per_doc = [(x["nll"] - y["nll"]) / (x["bytes"] * math.log(2)) for x, y in pairs]
    assert c["p_value"] == pytest.approx(stats.wilcoxon(per_doc).pvalue, rel=1e-12)
    assert c["better"] == ("a" if high < 0 else "b" if low > 0 else None)
    assert la.compare_results(a, b) == c  # deterministic
    same = la.compare_results(a, a)
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["better"] is None


def test_compare_results_refuses_different_documents(gpt2, tok, two_results):
    a, _ = two_results
    other = evaluator().evaluate(gpt2, tok, SHORT_DOCS)
    with pytest.raises(ValueError, match="same texts"):
        la.compare_results(a, other)
    shuffled = copy.deepcopy(a)
    shuffled.per_document[0], shuffled.per_document[1] = shuffled.per_document[1], shuffled.per_document[0]
    with pytest.raises(ValueError, match="document 0 differs"):
        la.compare_results(a, shuffled)


# --- model kinds, modes, inputs -------------------------------------------------------------------------

def test_peft_model_and_training_modes_restored(tok):
    from peft import LoraConfig, get_peft_model

    base = la.build_tiny_model("llama", tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=64)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.5, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)  # random B: the adapter really changes the outputs
    model = get_peft_model(base, config)
    model.train()
    some_module = next(m for m in model.modules() if m is not model)
    some_module.eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    res = evaluator(max_length=MAX_LEN, batch_size=3).evaluate(model, tok, LONG_DOCS[:2])
    assert [m.training for m in model.modules()] == modes
    model.eval()  # the brute force needs dropout off; the evaluator did that by itself
    expected = sum(brute_force_nll(model, encode(tok, d), tok.bos_token_id, MAX_LEN) for d in LONG_DOCS[:2])
    assert res.total_nll == pytest.approx(expected, rel=1e-4)
    with model.disable_adapter():
        plain = evaluator(max_length=MAX_LEN).evaluate(model, tok, LONG_DOCS[:2])
    assert abs(plain.total_nll - res.total_nll) > 1e-3


def test_4bit_model(tmp_path, tok):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path = la.save_tiny_checkpoint(tmp_path / "llama", "llama", tokenizer=tok, hidden_size=64, num_layers=2,
                                   num_heads=2, max_positions=64)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant)
    assert any("4bit" in type(m).__name__ for m in model.modules())
    docs = [SENTENCES[0], LONG_DOCS[0]]
    res = evaluator(max_length=MAX_LEN, batch_size=2).evaluate(model, tok, docs)
    expected = sum(brute_force_nll(model, encode(tok, d), tok.bos_token_id, MAX_LEN) for d in docs)
    assert res.total_nll == pytest.approx(expected, rel=1e-4)


def test_prefix_token_is_bos_else_eos(tok):
    with_bos = copy.deepcopy(tok)
    with_bos.add_special_tokens({"bos_token": "<s>"})
    assert with_bos.bos_token_id != with_bos.eos_token_id
    model = la.build_tiny_model("gpt2", with_bos, hidden_size=32, num_layers=2, num_heads=2, max_positions=64)
    model.eval()
    res = evaluator().evaluate(model, with_bos, [SENTENCES[3]])
    assert res.settings["prefix_token_id"] == with_bos.bos_token_id
    assert res.total_nll == pytest.approx(
        brute_force_nll(model, encode(with_bos, SENTENCES[3]), with_bos.bos_token_id, 64), rel=1e-4)

    eos_only = copy.deepcopy(tok)
    eos_only.bos_token = None
    model = la.build_tiny_model("gpt2", eos_only, hidden_size=32, num_layers=2, num_heads=2, max_positions=64)
    assert evaluator().evaluate(model, eos_only, ["Өфө"]).settings["prefix_token_id"] == eos_only.eos_token_id

    eos_only.eos_token = None
    with pytest.raises(ValueError, match="neither a BOS nor an EOS"):
        evaluator().evaluate(model, eos_only, ["Өфө"])


def test_model_path_generator_texts_and_ids(tmp_path, tok, gpt2):
    gpt2.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    direct = evaluator(max_length=MAX_LEN).evaluate(gpt2, tok, LONG_DOCS)
    loaded = evaluator(max_length=MAX_LEN).evaluate(str(tmp_path), texts=(d for d in LONG_DOCS),
                                                    ids=["x", "y"])
    assert loaded.total_nll == pytest.approx(direct.total_nll, rel=1e-6)
    assert [r["id"] for r in loaded.per_document] == ["x", "y"]
    assert loaded.model == str(tmp_path)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_length": 0}, "max_length"), ({"stride": -1}, "stride"), ({"max_length": 8, "stride": 9}, "stride"),
    ({"batch_size": 0}, "batch_size"), ({"bootstrap_samples": -5}, "bootstrap_samples"),
    ({"confidence_level": 1.5}, "confidence_level"), ({"seed": "0"}, "seed"),
])
def test_bad_settings_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        la.PerplexityEvaluator(**kwargs)


def test_bad_inputs_fail_early(gpt2, tok):
    with pytest.raises(ValueError, match="exceeds the model's context of 64"):
        evaluator(max_length=65).evaluate(gpt2, tok, ["Өфө"])
    with pytest.raises(ValueError, match="one str"):
        evaluator().evaluate(gpt2, tok, "Өфө")
    with pytest.raises(ValueError, match="one id per text"):
        evaluator().evaluate(gpt2, tok, ["Өфө", "ҡар"], ids=["a"])
    with pytest.raises(ValueError, match="empty"):
        evaluator().evaluate(gpt2, tok, [])
    with pytest.raises(ValueError, match="looks like the texts"):
        evaluator().evaluate(gpt2, ["Өфө"])


@pytest.mark.parametrize("model_type", ["mistral3", "gemma3", "qwen2_vl", "llava"])
def test_context_of_composite_configs_is_the_text_models(model_type, tok):
    """Composite configs hold the text model's context under text_config only; without reading it the
    evaluator fell back to the tokenizer's model_max_length (a window lm-eval would not use)."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    text_context = config.get_text_config(decoder=True).max_position_embeddings
    assert getattr(config, "max_position_embeddings", None) is None  # nothing at the top level
    model = SimpleNamespace(config=config)
    assert la.PerplexityEvaluator()._max_length(model, tok) == text_context != tok.model_max_length
    config.max_position_embeddings = 1200  # another modality's length at the top level loses too
    assert la.PerplexityEvaluator()._max_length(model, tok) == text_context
    with pytest.raises(ValueError, match=f"exceeds the model's context of {text_context}"):
        la.PerplexityEvaluator(max_length=text_context + 1)._max_length(model, tok)


@pytest.mark.parametrize("model_type", ["mistral3", "llava"])
def test_training_and_downstream_read_the_same_context_as_the_evaluator(model_type):
    """One reading of the context for the three places that need it: the recipes' block-size check, the
    multiple-choice evaluator's window and the perplexity evaluator's (was top-level attributes only)."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    from lowres_adapt.evaluation import _common
    from lowres_adapt.modeling import loading as _loading

    config = AutoConfig.for_model(model_type)
    text_context = config.get_text_config(decoder=True).max_position_embeddings
    assert _loading.context_length(config) == _common.model_context(SimpleNamespace(config=config)) == text_context
    with pytest.raises(ValueError, match=f"model's context of {text_context} tokens"):
        _loading.check_block_size(config, text_context + 1)
    _loading.check_block_size(config, text_context)


def test_intervals_over_few_documents_come_with_a_warning(gpt2, tok, many_docs):
    # 6 documents: the result, its dict, its markdown and a Python warning all say the intervals are rough
    with pytest.warns(UserWarning, match=r"rest on 6 documents \(fewer than 10\)"):
        few = evaluator(bootstrap_samples=50).evaluate(gpt2, tok, SHORT_DOCS + LONG_DOCS)
    assert len(few.warnings) == 1 and "6 documents" in few.warnings[0]
    assert json.loads(json.dumps(few.to_dict()))["warnings"] == few.warnings
    assert la.PerplexityResult.from_dict(few.to_dict()).warnings == few.warnings
    assert "warning: the confidence intervals rest on 6 documents" in few.to_markdown()
    # no intervals, no warning; 24 documents, no warning (and an error if one were raised)
    import warnings as _warnings

    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        assert evaluator(bootstrap_samples=0).evaluate(gpt2, tok, SHORT_DOCS).warnings == []
        many = evaluator(bootstrap_samples=50).evaluate(gpt2, tok, many_docs)
    assert many.warnings == [] and "warning" not in many.to_markdown()

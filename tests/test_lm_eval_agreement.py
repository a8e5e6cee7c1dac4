"""PerplexityEvaluator against lm-evaluation-harness itself: ``lm_eval.simple_evaluate`` with
``model="hf"`` on a local wikitext-style ``loglikelihood_rolling`` task, same model folder, same documents.

Where the windows are the same, the pooled metrics and every document's log-likelihood agree to 1e-5
relative (the issue asks for 1e-3). Where they differ by design, the tests check the difference is
exactly the documented one: lm-eval scores a BOS the tokenizer adds by itself, and counts words with
``re.split(r"\\s+")``. The comparison code is ``benchmarks/compare_lm_eval.py``, which prints the same
rows on the shared model and test split.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_lm_eval.py"
RTOL = 1e-5


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("compare_lm_eval", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cmp = _load_benchmark()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: extra threads only spin on a shared CPU (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny GPT-2 (byte-level BPE, adds nothing) and Llama (SentencePiece-style, prepends BOS) saved with
    la.save_tiny_checkpoint, and 8 Bashkir sample documents as JSONL; 128-token context, so most
    documents take two or three windows."""
    return cmp.tiny_checkpoints(tmp_path_factory.mktemp("lm-eval"), n_documents=8)


@pytest.fixture(scope="module")
def results(tiny):
    paths, data_file = tiny
    return {name: cmp.compare(path, data_file) for name, path in paths.items()}


def _rows(result, same_windows):
    return [r for r in result["rows"] if r["same_windows"] is same_windows]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_same_windows_agree_with_lm_eval(results, name):
    result = results[name]
    rows = _rows(result, True)
    assert [r["comparison"] for r in rows] == ["same windows", "same windows, max_length=64"]
    assert result["context"] == 128
    for r in rows:
        for metric, v in r["metrics"].items():
            assert v["library"] == pytest.approx(v["lm_eval"], rel=RTOL), (r["comparison"], metric)
        assert r["max_document_relative_difference"] < RTOL
        assert r["library_counts"]["bytes"] == r["lm_eval_counts"]["bytes"]
        assert r["library_counts"]["words"] == r["lm_eval_counts"]["words"]
        assert r["library_counts"]["total_nll"] == pytest.approx(r["lm_eval_counts"]["total_nll"], rel=RTOL)
    # the documents really are cut into several windows at both lengths
    assert rows[0]["library_counts"]["tokens"] > 2 * 128


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_rows_that_differ_by_design_do_differ(results, name):
    """Strided windows and joined documents are other computations: they move the figures by far more
    than the float32 noise between the two tools on the same windows (about 1e-7 here; a random tiny
    model barely uses its context, so the moves are small, and their sign says nothing)."""
    by_name = {r["comparison"].split(" (")[0]: r for r in results[name]["rows"]}
    noise = by_name["same windows"]["max_document_relative_difference"]
    strided = by_name["library stride=64"]
    assert strided["max_document_relative_difference"] > 100 * noise
    assert strided["library_counts"]["tokens"] == by_name["same windows"]["library_counts"]["tokens"]
    joined = by_name["library, documents joined by blank lines"]
    assert joined["library_counts"]["documents"] == 1
    assert joined["library_counts"]["bytes"] == joined["lm_eval_counts"]["bytes"] + 2 * 7  # 7 "\n\n" joins
    assert abs(joined["metrics"]["bits_per_byte"]["ratio"] - 1) > 100 * noise


def test_lm_eval_default_scores_the_bos_the_tokenizer_adds(tiny, results):
    """lm-eval encodes with the tokenizer's own special tokens and *also* conditions on its prefix token,
    so a BOS-prepending tokenizer gets ``[BOS] + [BOS, t0, ...]``: one more token scored per document
    (p(BOS | BOS)) and windows shifted by one. Reproduced exactly by the library's own window scorer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lowres_adapt.evaluation._windows import eval_mode, score_documents

    paths, data_file = tiny
    assert results["llama"]["tokenizer_adds_bos"] and not results["gpt2"]["tokenizer_adds_bos"]
    model = AutoModelForCausalLM.from_pretrained(str(paths["llama"]), dtype="float32")
    tok = AutoTokenizer.from_pretrained(str(paths["llama"]))
    texts = cmp.read_texts(data_file)
    with_bos = [tok(t)["input_ids"] for t in texts]
    assert all(ids[0] == tok.bos_token_id and ids[1:] == tok(t, add_special_tokens=False)["input_ids"]
               for ids, t in zip(with_bos, texts, strict=True))
    with eval_mode(model):
        expected = score_documents(model, with_bos, tok.bos_token_id, 128, None, 8)
    default = cmp.lm_eval_rolling(paths["llama"], data_file)
    assert [-ll for ll in default["loglikelihood"]] == pytest.approx(expected, rel=RTOL)
    row = next(r for r in results["llama"]["rows"] if r["comparison"].startswith("lm-eval default"))
    assert row["metrics"]["bits_per_byte"]["ratio"] < 1 - 100 * RTOL  # the extra token only adds nll


def test_word_counts_differ_only_at_leading_and_trailing_whitespace(tiny, tmp_path):
    """lm-eval counts ``len(re.split(r"\\s+", text))`` words, the library ``len(text.split())``: one more
    word for leading whitespace and one for trailing whitespace; log-likelihoods and bytes still agree."""
    import lowres_adapt as la

    paths, _ = tiny
    texts = [" ҡар яуа\n", "Өфө ҡалаһы", "\tбала  уҡый  ", "һаумыһығыҙ,\n\nдуҫтар!"]
    data_file = tmp_path / "ws.jsonl"
    data_file.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                         encoding="utf-8")
    lm = cmp.lm_eval_rolling(paths["gpt2"], data_file)
    lib = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(str(paths["gpt2"]), None, texts)
    assert lm["texts"] == texts
    assert [r["words"] for r in lib.per_document] == [2, 2, 2, 2]
    assert lm["words"] == [4, 2, 4, 2] == [len(re.split(r"\s+", t)) for t in texts]
    assert lm["bytes"] == [r["bytes"] for r in lib.per_document]
    assert [-ll for ll in lm["loglikelihood"]] == pytest.approx([r["nll"] for r in lib.per_document], rel=RTOL)
    assert lib.bits_per_byte == pytest.approx(lm["metrics"]["bits_per_byte"], rel=RTOL)
    assert lib.word_perplexity > lm["metrics"]["word_perplexity"] * 1.5  # 8 vs 12 words for the same nll


def test_shared_base_on_shared_test_documents(mini_gpt2_ru, shared_data):
    """mini-gpt2-ru (context 256) on the first 4 documents of the shared test split."""
    result = cmp.compare(mini_gpt2_ru, shared_data / "corpus-test.jsonl", limit=4, extra_rows=False)
    assert not result["tokenizer_adds_bos"] and result["context"] == 256
    for r in result["rows"]:
        assert r["same_windows"]
        for metric, v in r["metrics"].items():
            assert v["library"] == pytest.approx(v["lm_eval"], rel=RTOL), (r["comparison"], metric)
        assert r["max_document_relative_difference"] < RTOL
    assert result["rows"][0]["library_counts"]["tokens"] > 4 * 256


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "mistral", "mistral3", "gemma3", "qwen2_vl", "llava"])
def test_default_max_length_is_lm_evals(model_type):
    """Without max_length both tools window at the same context: lm-eval's resolve_max_length."""
    from types import SimpleNamespace

    from lm_eval.models.utils import resolve_max_length
    from transformers import AutoConfig

    import lowres_adapt as la

    config = AutoConfig.for_model(model_type)
    tok = SimpleNamespace(model_max_length=10**30)  # a tokenizer that does not know its length
    assert la.PerplexityEvaluator()._max_length(SimpleNamespace(config=config), tok) == resolve_max_length(config, tok)

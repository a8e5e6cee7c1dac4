"""The one loader: the same model, dtype and options whichever door a user comes in by (recipes, the
evaluator, generate, the study's base rows), checks before anything loads, and the device policy."""

from __future__ import annotations

import json

import pytest

import lowres_adapt as la
from lowres_adapt.modeling import loading, policy


def test_model_kwargs_are_checked_before_anything_loads():
    with pytest.raises(ValueError, match=r"unknown option 'atn_implementation' \(did you mean 'attn_implementation'"):
        loading.resolve_model("no/such-model-anywhere", model_kwargs={"atn_implementation": "sdpa"})
    with pytest.raises(ValueError, match=r"cannot set 'quantization_config'.*la.QLoRA"):
        la.PerplexityEvaluator().evaluate("sample:mini-gpt2-ru", texts=["x"],
                                          model_kwargs={"quantization_config": {}})
    with pytest.raises(ValueError, match="trust_remote_code'] must be True or False"):
        la.generate("sample:mini-gpt2-ru", prompts=["Беҙ"], model_kwargs={"trust_remote_code": "yes"})
    with pytest.raises(la.StudyConfigError, match="model_kwargs: .*unknown option 'revison'"):
        la.Study(["sample:mini-gpt2-ru"], ["lora"], corpus=["a"], model_kwargs={"revison": "main"})
    with pytest.raises(ValueError, match=r"load='bf61' is not known \(did you mean 'bf16'"):
        loading.load_for_inference("sample:mini-gpt2-ru", load="bf61")


def test_options_pass_through_to_from_pretrained(monkeypatch):
    import transformers

    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    model, _ = loading.load_for_inference("sample:mini-gpt2-ru", load="bf16",
                                          model_kwargs={"attn_implementation": "eager", "low_cpu_mem_usage": True})
    assert model.config._attn_implementation == "eager"
    assert str(seen["dtype"]) == "torch.bfloat16" and seen["low_cpu_mem_usage"] is True
    assert "trust_remote_code" not in seen and "device_map" not in seen  # remote code stays off; CPU: no map
    assert loading.base_load_of(model) == "bf16" and not model.training


def test_policy_on_cpu_and_on_simulated_gpus(monkeypatch):
    assert [la.LoRA().base_load(), la.FullFineTuning().base_load(), la.QLoRA().base_load()] == ["fp32", "fp32", "nf4"]
    assert policy.default_inference_load() == "fp32"
    for has_bf16, half in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(policy, "_gpu_has_bf16", lambda has=has_bf16: has)
        assert policy.default_base_load(quantize=False, adapters=True, device="cuda") == half
        assert policy.default_base_load(quantize=False, adapters=False, device="cuda") == "fp32"  # master weights
        assert policy.default_base_load(quantize=True, adapters=True, device="cuda") == "nf4"
        assert policy.default_inference_load("cuda") == half
        assert policy.compute_dtype("cuda") == {"bf16": "bfloat16", "fp16": "float16"}[half]


def test_each_rank_queries_its_own_gpu(monkeypatch):
    """Under torchrun, rank k's first CUDA allocation (the 4-bit check) goes to GPU k, not GPU 0."""
    import torch

    devices = []

    def fake_randn(*shape, device=None, **kwargs):
        devices.append(device)
        raise RuntimeError("stop here")

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch, "randn", fake_randn)
    monkeypatch.setattr(loading, "_BNB_CHECKED", {})
    reason = loading._bnb_unavailable_reason("cuda")
    assert devices == ["cuda:3"] and "stop here" in reason
    assert policy.local_cuda_index() == 3


def test_weight_bytes_from_config_alone():
    import transformers

    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                   vocab_size=100)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert policy.weight_bytes(cfg, "fp32") == 4 * n
    assert policy.weight_bytes(cfg, "bf16") == 2 * n
    linear = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "embed" not in name
                 and "lm_head" not in name)
    assert policy.weight_bytes(cfg, "nf4") == int(2 * (n - linear) + linear * (0.5 + 4 / 64))


def test_wrong_targets_fail_before_the_corpus_is_tokenized(monkeypatch, ba_docs, tmp_path):
    from lowres_adapt.data import packing

    def tokenizing(*a, **k):
        raise AssertionError("the corpus was tokenized before the recipe was checked")

    monkeypatch.setattr(packing, "pack_texts", tokenizing)
    with pytest.raises(ValueError, match=r"target_modules \['q_proj'\] match no module of GPT2LMHeadModel"):
        la.LoRA(target_modules=["q_proj"]).train("sample:mini-gpt2-ru", ba_docs, output_dir=tmp_path)


def test_training_records_its_loading(tiny_gpt2_path, ba_docs, tmp_path):
    run = la.LoRA(r=4).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path, max_steps=1, block_size=32,
                             batch_size=2, model_kwargs={"attn_implementation": "eager"})
    assert run.metrics["base_load"] == "fp32"
    assert run.metrics["model_kwargs"] == {"attn_implementation": "eager"}
    assert run.model.get_base_model().config._attn_implementation == "eager"
    assert json.loads((tmp_path / "metrics.json").read_text())["model_kwargs"] == {"attn_implementation": "eager"}


def test_study_scores_each_loading_of_its_runs(ba_docs, tmp_path):
    """A grid of full fine-tuning (fp32 base) and QLoRA (NF4 base) gets one base row per loading, each
    equal to the evaluator's own answer for that loading (another door onto the same question)."""
    study = la.Study(["tiny:gpt2"], ["full", "qlora"], seeds=[0], corpus=ba_docs, output_dir=tmp_path / "s",
                     reference_corpus="sample:ru",
                     max_steps=1, block_size=32, batch_size=2, num_prompts=2, prompt_words=3,
                     generation={"max_new_tokens": 4}, evaluation={"bootstrap_samples": 0}, progress=False)
    res = study.run()
    assert sorted(res.base) == ["tiny-gpt2@fp32", "tiny-gpt2@nf4"]
    rows = {(r["recipe"], r["base_load"]) for r in res.run_rows()}
    assert rows == {("base (fp32)", "fp32"), ("base (nf4)", "nf4"), ("full", "fp32"), ("qlora-r8", "nf4")}
    data = study._load_data()
    path = str(tmp_path / "s" / "models" / "tiny-gpt2")
    for load in ("fp32", "nf4"):
        direct = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(path, texts=data.test, load=load)
        assert res.base[f"tiny-gpt2@{load}"]["test"]["bits_per_byte"] == pytest.approx(direct.bits_per_byte, abs=1e-12)
    # each run's retention is measured against the base row of its own loading
    for recipe, load in (("qlora-r8", "nf4"), ("full", "fp32")):
        run = next(r for r in res.runs if r["recipe_label"] == recipe)
        assert run["reference"]["bits_per_byte_before"] == pytest.approx(
            res.base[f"tiny-gpt2@{load}"]["reference"]["bits_per_byte_after"], abs=1e-12)
    assert res.base["tiny-gpt2@nf4"]["reference"]["bits_per_byte_after"] != \
        res.base["tiny-gpt2@fp32"]["reference"]["bits_per_byte_after"]
    assert "base_load" in (tmp_path / "s" / "results.csv").read_text().splitlines()[0].split(",")
    # the folder reads back the same rows
    assert sorted(la.StudyResults.load(tmp_path / "s").base) == sorted(res.base)


def test_the_cli_loads_as_python_does(ba_docs, tmp_path):
    """The same question through the shell: `evaluate --load nf4` equals evaluate(path, load="nf4"), and
    `train --attn-implementation eager` records the option as recipe.train(model_kwargs=...) does."""
    from lowres_adapt.cli import EXIT_OK, main

    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(ba_docs[:12]), encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "sample:mini-gpt2-ru", "--corpus", str(corpus), "--split", "all", "--load", "nf4",
                 "--bootstrap-samples", "0", "--max-batch-tokens", "256", "--json", str(out), "-q"]) == EXIT_OK
    python = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(
        "sample:mini-gpt2-ru", texts=la.load_corpus(corpus), load="nf4")
    printed = json.loads(out.read_text())
    assert printed["bits_per_byte"] == pytest.approx(python.bits_per_byte, rel=1e-6)  # other batches, same number
    assert printed["settings"]["max_batch_tokens"] == 256
    metrics = tmp_path / "train.json"
    assert main(["train", "sample:mini-gpt2-ru", "--corpus", str(corpus), "--recipe", "lora-r4", "--output-dir",
                 str(tmp_path / "run"), "--max-steps", "1", "--block-size", "32", "--batch-size", "2",
                 "--attn-implementation", "eager", "--packing", "concatenated", "--json", str(metrics), "-q"]) == EXIT_OK
    recorded = json.loads(metrics.read_text())
    assert recorded["model_kwargs"] == {"attn_implementation": "eager"} and recorded["base_load"] == "fp32"
    assert recorded["packing"] == "concatenated"  # as recipe.train(packing="concatenated")


def test_vocabulary_extension_in_place_holds_no_second_model(ba_docs):
    """The copy that keeps a caller's model unchanged costs a whole second model (14 GB for a 7B model in
    fp16); ``inplace=True`` (and a path, which the function loads itself) extends without it."""
    import torch
    import transformers

    from lowres_adapt.recipes._step_memory import StepMemory

    tok = la.train_tokenizer(ba_docs, vocab_size=400)
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=2048, num_hidden_layers=4, num_attention_heads=4,
                                   vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    before = model.get_input_embeddings().weight.detach().clone()
    peaks = {}
    for inplace in (False, True):
        with StepMemory(model, device="cpu") as mem:
            extended, _, info = la.extend_vocabulary(model, tok, new_tokens=[" һәм", " менән"], inplace=inplace)
        peaks[inplace] = mem.peak - mem.baseline
        assert (extended is model) is inplace
    print({k: f"{v / 1e6:.1f} MB" for k, v in peaks.items()}, f"model {model_bytes / 1e6:.1f} MB")
    assert peaks[False] >= model_bytes  # the copy
    assert peaks[True] < model_bytes / 4  # only the resized embedding and head
    assert torch.equal(model.get_input_embeddings().weight[: len(tok)], before)  # old rows kept in place
    assert model.get_input_embeddings().weight.shape[0] == len(tok) + 2 == len(tok) + len(info.new_token_ids)

"""Recipes: round trips, target discovery, every recipe and LoRA variant trained on tiny GPT-2 and Llama
models, QLoRA on real bitsandbytes 4-bit layers, seeding, divergence, resume, merge, bad input, and
parameter accounting on the meta device.

Everything is built in-process (tiny models from configs, a tokenizer trained on the shipped sample);
runs are 2-4 steps of 32-token blocks.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import re

import pytest
import torch

import lowres_adapt as la
from lowres_adapt.data import packing as _packing
from lowres_adapt.errors import QuantizationUnavailableError, TrainingDivergedError
from lowres_adapt.modeling import loading as _loading
from lowres_adapt.recipes import _trainer

BLOCK = 32
FAST = {"max_steps": 2, "block_size": BLOCK, "batch_size": 2, "logging_steps": 1}

RECIPES = [
    la.FullFineTuning(),
    la.FullFineTuning(frozen_modules=["wpe"]),
    la.LoRA(),
    la.LoRA(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"], variant="dora"),
    la.LoRA(r=16, variant="rslora", target_modules="all-linear"),
    la.LoRA(variant="pissa", modules_to_save=["lm_head"]),
    la.LoRA(loraplus_lr_ratio=16, bias="lora_only", trainable_token_indices=[1, 2]),
    la.LoRA(trainable_token_indices={"embed_tokens": [3, 4]}),
    la.QLoRA(),
    la.QLoRA(r=4, quant_type="fp4", double_quant=False, variant="dora"),
]


# ------------------------------------------------------------------------------------ recipes as data
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: f"{r.name}-{getattr(r, 'variant', None)}")
def test_round_trip(recipe):
    d = recipe.to_dict()
    assert d["recipe"] == recipe.name
    assert json.loads(json.dumps(d)) == d  # JSON/YAML friendly: no tuples, no objects
    again = la.AdaptationRecipe.from_dict(json.loads(json.dumps(d)))
    assert again == recipe and type(again) is type(recipe)
    assert type(recipe).from_dict(d) == recipe
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    assert copy.deepcopy(recipe) == recipe
    assert repr(recipe).startswith(type(recipe).__name__ + "(")
    if isinstance(recipe, la.LoRA):
        assert recipe.copy(r=recipe.r + 1) != recipe and recipe.copy(r=recipe.r + 1).r == recipe.r + 1


def test_qlora_is_lora_with_a_quantized_base():
    q = la.QLoRA(r=8)
    assert isinstance(q, la.LoRA) and q.quantize_base and q.quant_type == "nf4" and q.double_quant
    assert q != la.LoRA(r=8)
    assert la.AdaptationRecipe.from_dict({"recipe": "lora", "r": 8, "quantize_base": True})._quantize()
    assert not la.LoRA(r=8)._quantize()


def test_bad_recipe_values_name_the_field_and_the_fix():
    with pytest.raises(ValueError, match=r"r must be a positive integer.*got 0"):
        la.LoRA(r=0)
    with pytest.raises(ValueError, match=r"got -2"):
        la.QLoRA(r=-2)
    with pytest.raises(ValueError, match=r"unknown LoRA variant 'dorra'.*did you mean 'dora'.*'rslora', 'pissa'"):
        la.LoRA(variant="dorra")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        la.LoRA(dropout=1.5)
    with pytest.raises(ValueError, match=r"target_modules must be 'auto', 'all-linear'.*\['q_proj'\]"):
        la.LoRA(target_modules="q_proj")
    with pytest.raises(ValueError, match=r"unknown recipe 'lorra'.*known recipes: \[.*'full'.*'lora'.*'qlora'"):
        la.AdaptationRecipe.from_dict({"recipe": "lorra", "r": 8})
    with pytest.raises(ValueError, match=r"unknown LoRA variant 'vera'"):
        la.AdaptationRecipe.from_dict({"recipe": "lora", "variant": "vera"})
    # PiSSA reads the float base weights: under a 4-bit base it fails at construction, not inside PEFT
    # after the quantized model has loaded
    for make in (lambda: la.QLoRA(variant="pissa"),
                 lambda: la.AdaptationRecipe.from_dict({"recipe": "lora", "variant": "pissa", "quantize_base": True})):
        with pytest.raises(ValueError, match=r"variant='pissa'.*4-bit base.*LoRA\(variant='pissa'\)"):
            make()
    with pytest.raises(ValueError, match=r"unknown LoRA field\(s\) \['rank'\]"):
        la.AdaptationRecipe.from_dict({"recipe": "lora", "rank": 8})
    with pytest.raises(ValueError, match="no 'recipe' key"):
        la.AdaptationRecipe.from_dict({"r": 8})
    with pytest.raises(ValueError, match="use LoRA"):
        la.QLoRA(quantize_base=False)
    with pytest.warns(UserWarning, match="ignored unless quantize_base=True"):
        la.LoRA(quant_type="fp4")


# ------------------------------------------------------------------------------------ target modules
def test_find_target_modules_per_architecture():
    gpt2 = la.build_tiny_model("gpt2", vocab_size=50, hidden_size=16, num_heads=2)
    llama = la.build_tiny_model("llama", vocab_size=50, hidden_size=16, num_heads=2)
    assert la.find_target_modules(gpt2) == ["attn.c_proj", "c_attn"]  # not the MLP's c_proj
    assert la.find_target_modules(gpt2, "all-linear") == ["c_attn", "c_fc", "c_proj"]
    assert la.find_target_modules(llama) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert la.find_target_modules(llama, "all-linear") == ["down_proj", "gate_proj", "k_proj", "o_proj",
                                                           "q_proj", "up_proj", "v_proj"]
    # Phi-style naming: the attention output projection is called "dense"
    from transformers import AutoModelForCausalLM, PhiConfig

    phi = AutoModelForCausalLM.from_config(PhiConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                                     num_hidden_layers=1, num_attention_heads=2))
    assert la.find_target_modules(phi) == ["dense", "k_proj", "q_proj", "v_proj"]
    assert "lm_head" not in la.find_target_modules(phi, "all-linear")


def test_no_target_lists_the_model_modules():
    class NoAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(4, 4)

    with pytest.raises(ValueError, match=r"found no attention projections.*encoder \(Linear\).*target_modules"):
        la.find_target_modules(NoAttention())
    gpt2 = la.build_tiny_model("gpt2", vocab_size=50, hidden_size=16, num_heads=2)
    with pytest.raises(ValueError, match=r"\['q_proj'\] match no module of GPT2LMHeadModel.*'c_attn'"):
        la.LoRA(target_modules=["q_proj"])._adapt(gpt2)


# ------------------------------------------------------------------------------------ training each recipe
def _expected_lora_trainable(model, targets, r):
    """Brute force: r * (in + out) for every targeted linear/Conv1D layer of the *unwrapped* model."""
    total = 0
    for name, module in model.named_modules():
        if any(name == t or name.endswith("." + t) for t in targets):
            w = module.weight
            total += r * (w.shape[0] + w.shape[1])
    return total


def _base_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


TRAIN_CASES = [
    ("full", la.FullFineTuning()),
    ("lora", la.LoRA(r=4)),
    ("dora", la.LoRA(r=4, variant="dora")),
    ("rslora", la.LoRA(r=4, alpha=8, variant="rslora")),
    ("pissa", la.LoRA(r=4, variant="pissa", dropout=0.0)),
    ("loraplus", la.LoRA(r=4, loraplus_lr_ratio=16)),
]


# every recipe and variant on both architectures; PiSSA on Llama is trained in its own test below
@pytest.mark.parametrize("arch,case,recipe", [
    pytest.param(arch, case, recipe, id=f"{case}-{arch}")
    for case, recipe in TRAIN_CASES for arch in ("gpt2", "llama") if (case, arch) != ("pissa", "llama")
])
def test_each_recipe_trains(arch, case, recipe, tiny_gpt2_path, tiny_llama_path, ba_docs, tmp_path):
    path = tiny_gpt2_path if arch == "gpt2" else tiny_llama_path
    base = _base_model(path)
    run = recipe.train(path, ba_docs[:8], ba_docs[-2:], output_dir=tmp_path, learning_rate=1e-2, **FAST)
    m = run.metrics
    n_base = sum(p.numel() for p in base.parameters())
    # parameter accounting, recomputed by hand
    if case == "full":
        assert m["trainable_params"] == m["total_params"] == n_base
    else:
        targets = la.find_target_modules(base)
        expected = _expected_lora_trainable(base, targets, 4)
        if case == "dora":  # plus one magnitude per output feature of every targeted layer
            expected += sum(mod.weight.shape[1 if arch == "gpt2" else 0] for n, mod in base.named_modules()
                            if any(n.endswith("." + t) for t in targets))
        assert m["trainable_params"] == expected
        assert m["total_params"] == n_base + expected
    assert m["trainable_share"] == pytest.approx(m["trainable_params"] / m["total_params"])
    # the run did what it says: steps x batch x block tokens, finite losses
    assert m["global_step"] == 2 and m["train_tokens"] == 2 * 2 * BLOCK
    assert math.isfinite(m["train_loss"]) and math.isfinite(m["eval_loss"])
    assert m["eval_perplexity"] == pytest.approx(math.exp(m["eval_loss"]))
    assert m["recipe"] == recipe.to_dict() and m["seed"] == 0
    # files: adapter (PEFT format) or full model, tokenizer, recipe.json, metrics.json
    names = {p.name for p in run.output_dir.iterdir()}
    assert {"recipe.json", "metrics.json", "tokenizer.json"} <= names
    assert ("config.json" in names) == (case == "full") and ("adapter_config.json" in names) == (case != "full")
    assert la.AdaptationRecipe.from_dict(json.loads((tmp_path / "recipe.json").read_text())) == recipe
    assert la.TrainingRun.load_metrics(tmp_path)["train_loss"] == m["train_loss"]
    # which weights moved
    trained = run.model.get_base_model() if hasattr(run.model, "get_base_model") else run.model
    base_params = dict(base.named_parameters())
    changed = {n.replace(".base_layer", "") for n, p in trained.named_parameters()
               if "lora_" not in n and n.replace(".base_layer", "") in base_params
               and not torch.equal(p.detach(), base_params[n.replace(".base_layer", "")])}
    if case == "full":
        assert len(changed) >= len(list(base.parameters())) - 2  # all but possibly unused rows
    elif case == "pissa":  # PiSSA moves the principal components out of the base weight
        assert changed and all(any(t in n for t in targets) for n in changed)
    else:
        assert not changed  # frozen base
    if case == "rslora":
        layer = next(mod for mod in run.model.modules() if isinstance(getattr(mod, "scaling", None), dict))
        assert layer.scaling["default"] == pytest.approx(8 / math.sqrt(4))
    if case == "pissa":  # saved as plain LoRA of rank 2r for the original base
        assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 8


def test_pissa_adapter_applies_to_the_original_base(tiny_llama_path, ba_docs, tmp_path):
    from peft import PeftModel

    run = la.LoRA(r=4, variant="pissa", dropout=0.0).train(tiny_llama_path, ba_docs[:8], output_dir=tmp_path,
                                                          learning_rate=1e-2, **FAST)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    run.model.eval()
    with torch.no_grad():
        trained = run.model(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(_base_model(tiny_llama_path), str(tmp_path)).eval()
        again = reloaded(input_ids=ids).logits
    torch.testing.assert_close(again, trained, atol=1e-4, rtol=1e-4)


def test_loraplus_optimizer_gives_b_a_larger_learning_rate(tiny_llama_path):
    recipe = la.LoRA(r=4, loraplus_lr_ratio=16)
    model, _ = recipe.prepare(tiny_llama_path)
    opt = recipe._optimizer(model, 1e-3, 0.0)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if "lora_A" in name:
            assert lr_of[id(p)] == pytest.approx(1e-3)
        if "lora_B" in name:
            assert lr_of[id(p)] == pytest.approx(16e-3)
    assert la.LoRA(r=4)._optimizer(model, 1e-3, 0.0) is None


def test_packing_efficiency_and_blocks(tiny_gpt2_path, tiny_tokenizer, ba_docs, tmp_path):
    docs = ba_docs[:6]
    ds, stats = _packing.pack_texts(tiny_tokenizer, docs, BLOCK, "train_texts", packing="concatenated")
    stream = []
    for d in docs:  # brute force: EOS after every document, equal blocks, remainder dropped
        stream += tiny_tokenizer(d, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    n_blocks = len(stream) // BLOCK
    assert stats["n_tokens"] == len(stream) and len(ds) == n_blocks
    assert ds[n_blocks - 1]["input_ids"] == stream[(n_blocks - 1) * BLOCK:n_blocks * BLOCK]
    assert stats["packing_efficiency"] == pytest.approx(n_blocks * BLOCK / len(stream))
    run = la.FullFineTuning().train(tiny_gpt2_path, docs, output_dir=tmp_path, packing="concatenated",
                                    **{**FAST, "max_steps": 1})
    assert run.metrics["packing_efficiency"] == pytest.approx(n_blocks * BLOCK / len(stream))
    assert run.metrics["train_blocks"] == n_blocks


# ------------------------------------------------------------------------------------ QLoRA, for real on CPU
def test_qlora_trains_on_bitsandbytes_4bit_layers(tiny_llama_path, ba_docs, tmp_path):
    import bitsandbytes as bnb

    if _loading._bnb_unavailable_reason(_loading.training_device()):
        pytest.skip("bitsandbytes cannot quantize on this machine")
    run = la.QLoRA(r=4).train(tiny_llama_path, ba_docs[:8], ba_docs[-2:], output_dir=tmp_path,
                              learning_rate=1e-2, **FAST)
    targeted = {n: mod for n, mod in run.model.named_modules() if hasattr(mod, "base_layer")}
    assert len(targeted) == 4 * 2  # q, k, v, o in 2 layers
    assert all(isinstance(mod.base_layer, bnb.nn.Linear4bit) for mod in targeted.values())
    weight = next(iter(targeted.values())).base_layer.weight
    assert weight.quant_state.quant_type == "nf4" and weight.quant_state.nested  # double quantization
    m = run.metrics
    assert math.isfinite(m["eval_loss"]) and m["gradient_checkpointing"] is True
    # PEFT's counting: 4-bit weights count unpacked, so totals equal the full-precision model's
    base = _base_model(tiny_llama_path)
    targets = la.find_target_modules(base)
    expected = _expected_lora_trainable(base, targets, 4)
    assert m["trainable_params"] == expected
    assert m["total_params"] == sum(p.numel() for p in base.parameters()) + expected
    # transformers quantizes every linear layer but the LM head (not only the targeted ones): stored
    # bytes shrink by (4 - 0.5) bytes per quantized weight (absmax constants aside)
    quantized = sum(mod.weight.numel() for n, mod in base.named_modules()
                    if isinstance(mod, torch.nn.Linear) and n != "lm_head")
    assert sum(isinstance(mod, bnb.nn.Linear4bit) for mod in run.model.modules()) == 7 * 2
    full_bytes = sum(p.numel() * 4 for p in base.parameters()) + expected * 4
    assert full_bytes - m["weight_bytes"] == pytest.approx(quantized * 3.5, rel=0.01)


def test_qlora_unavailable_says_why_and_suggests_lora(tiny_llama_path, ba_docs, tmp_path, monkeypatch):
    monkeypatch.setattr(_loading, "_bnb_unavailable_reason", lambda device: "no 4-bit backend for this device")
    monkeypatch.setattr(_trainer, "build_trainer", _no_training)
    with pytest.raises(QuantizationUnavailableError, match=r"no 4-bit backend.*Use LoRA"):
        la.QLoRA().train(tiny_llama_path, ba_docs, output_dir=tmp_path, **FAST)
    with pytest.raises(QuantizationUnavailableError, match="LoRA"):
        la.QLoRA().prepare(tiny_llama_path)


# ------------------------------------------------------------------------------------ seeds, divergence, resume
def test_same_seed_same_loss(tiny_gpt2_path, ba_docs, tmp_path):
    kw = {**FAST, "max_steps": 3, "learning_rate": 1e-2}
    a = la.LoRA(r=4).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path / "a", seed=3, **kw)
    b = la.LoRA(r=4).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path / "b", seed=3, **kw)
    c = la.LoRA(r=4).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path / "c", seed=4, **kw)

    def losses(run):
        return [h["loss"] for h in run.log_history if "loss" in h]

    assert len(losses(a)) == 3 and losses(a) == losses(b)
    assert a.metrics["train_loss"] == b.metrics["train_loss"]
    assert losses(c) != losses(a)  # another seed: another adapter init and data order


def test_divergence_raises_and_keeps_the_last_good_checkpoint(tiny_gpt2_path, ba_docs, tmp_path):
    # linear warmup over 2 steps: step 1 updates with lr 0 (checkpoint-1 = the base), step 2 with 5e29
    # (checkpoint-2 is ruined), so step 3 is the first non-finite loss and checkpoint-1 the last good one.
    with pytest.raises(TrainingDivergedError, match=r"step 3.*checkpoint-1.*resume_from_checkpoint") as info:
        la.FullFineTuning().train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path, learning_rate=1e30,
                                  warmup_steps=2, lr_scheduler_type="linear", save_steps=1,
                                  **{**FAST, "max_steps": 5})
    assert "checkpoint-2" not in str(info.value)
    assert (tmp_path / "checkpoint-1").is_dir()
    from transformers import AutoModelForCausalLM

    good = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint-1")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert math.isfinite(good(input_ids=ids, labels=ids).loss.item())
    assert not (tmp_path / "metrics.json").exists()


def test_resume_from_checkpoint_continues_the_same_run(tiny_llama_path, ba_docs, tmp_path):
    import shutil

    kw = {**FAST, "max_steps": 4, "learning_rate": 1e-2, "save_steps": 2}
    full = la.LoRA(r=4).train(tiny_llama_path, ba_docs[:8], output_dir=tmp_path / "a", **kw)
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    resumed = la.LoRA(r=4).train(tiny_llama_path, ba_docs[:8], output_dir=tmp_path / "b",
                                 resume_from_checkpoint=True, **kw)
    loss_a = {h["step"]: h["loss"] for h in full.log_history if "loss" in h}
    loss_b = {h["step"]: h["loss"] for h in resumed.log_history if "loss" in h}
    assert resumed.metrics["global_step"] == 4
    assert loss_b[4] == pytest.approx(loss_a[4], abs=1e-5) and loss_b[3] == pytest.approx(loss_a[3], abs=1e-5)


# ------------------------------------------------------------------------------------ merge, continue, datasets
def test_merge_adapter_equals_base_plus_adapter(tiny_gpt2_path, ba_docs, tmp_path):
    from peft import PeftModel

    run = la.LoRA(r=4, dropout=0.0).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path, merge_adapter=True,
                                          learning_rate=1e-2, **FAST)
    assert not isinstance(run.model, PeftModel)
    merged = _base_model(tmp_path / "merged").eval()
    with_adapter = PeftModel.from_pretrained(_base_model(tiny_gpt2_path), str(tmp_path)).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)
        base_logits = _base_model(tiny_gpt2_path)(input_ids=ids).logits
    assert not torch.allclose(merged(input_ids=ids).logits, base_logits)  # the adapter did something


def test_a_peft_model_keeps_training_its_adapter(tiny_llama_path, ba_docs, tmp_path):
    first = la.LoRA(r=4).train(tiny_llama_path, ba_docs[:8], output_dir=tmp_path / "1", learning_rate=1e-2,
                               **FAST)
    before = {n: p.detach().clone() for n, p in first.model.named_parameters() if "lora_B" in n}
    second = la.LoRA(r=4).train(first.model, ba_docs[8:16], tokenizer=first.tokenizer,
                                output_dir=tmp_path / "2", learning_rate=1e-2, **FAST)
    assert list(second.model.peft_config) == ["default"]  # no second adapter
    assert second.metrics["trainable_params"] == first.metrics["trainable_params"]
    after = dict(second.model.named_parameters())
    assert all(not torch.equal(after[n], before[n]) for n in before)
    # an adapter folder continues too (its base is read from adapter_config.json)
    third = la.LoRA(r=4).train(tmp_path / "2", ba_docs[:8], output_dir=tmp_path / "3", **{**FAST, "max_steps": 1})
    assert third.metrics["trainable_params"] == first.metrics["trainable_params"]


def test_pretokenized_dataset_scores_labelled_positions_only(tiny_gpt2_path, tiny_tokenizer, tmp_path):
    examples = []
    for i in range(6):
        ids = list(range(10 + i, 20 + 2 * i))
        examples.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    collated = _trainer.collator(tiny_tokenizer, None)(examples[:2])
    pad = tiny_tokenizer.pad_token_id
    assert collated["input_ids"].shape == (2, 11)
    assert collated["input_ids"][0].tolist() == list(range(10, 20)) + [pad]
    assert collated["labels"][0].tolist() == [-100] * 3 + list(range(13, 20)) + [-100]
    assert collated["attention_mask"][0].tolist() == [1] * 10 + [0]
    assert collated["labels"][1].tolist() == [-100] * 3 + list(range(14, 22))
    run = la.LoRA(r=4).train(tiny_gpt2_path, train_dataset=examples, eval_dataset=examples[:2],
                             tokenizer=tiny_tokenizer, output_dir=tmp_path, **FAST)
    assert run.metrics["packing_efficiency"] is None
    # the reported eval loss is the mean over scored (label != -100, shifted) positions, recomputed by hand
    model = run.model.eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for ex in examples[:2]:
            ids = torch.tensor([ex["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            labels = torch.tensor(ex["labels"][1:])
            keep = labels != -100
            nll -= logp[keep].gather(1, labels[keep, None]).sum().item()
            n += int(keep.sum())
    assert run.metrics["eval_loss"] == pytest.approx(nll / n, rel=1e-4)


# ------------------------------------------------------------------------------------ bad input, before training
def _no_training(*args, **kwargs):
    raise AssertionError("training started although the input was bad")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"model": "no/such/folder/model"}, FileNotFoundError, r"'no/such/folder/model' does not exist"),
    ({"block_size": 256}, ValueError, r"block_size=256 is larger than the model's context of 128.*<= 128"),
    ({"train_texts": ["Сәләм."]}, ValueError, r"fewer than one block of block_size=32.*lower block_size"),
    ({"train_texts": "one string"}, TypeError, r"list of documents"),
    ({"eval_texts": ["Әйе."]}, ValueError, r"eval_texts has \d+ tokens, fewer than one block"),
    ({"resume_from_checkpoint": True}, ValueError, r"has no checkpoint-N folder"),
    ({"learning_rate": -1.0}, ValueError, r"learning_rate must be a positive number, got -1.0"),
    ({"max_steps": 0}, ValueError, r"max_steps must be an integer >= 1, got 0"),
    ({"optimm": "adamw_torch"}, ValueError, r"unknown training argument 'optimm'.*did you mean 'optim'"),
    ({"lr_scheduler_type": "cosin"}, ValueError, r"unknown lr_scheduler_type 'cosin'"),
    ({"merge_adapter": True, "recipe": la.FullFineTuning()}, ValueError, r"merge_adapter=True needs an adapter"),
])
def test_bad_input_fails_before_training(kwargs, error, match, tiny_gpt2_path, ba_docs, tmp_path, monkeypatch):
    monkeypatch.setattr(_trainer, "build_trainer", _no_training)
    kwargs = dict(kwargs)
    recipe = kwargs.pop("recipe", la.LoRA(r=4))
    model = kwargs.pop("model", tiny_gpt2_path)
    train_texts = kwargs.pop("train_texts", ba_docs)
    args = {**FAST, "output_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        recipe.train(model, train_texts, **args)
    assert not (tmp_path / "metrics.json").exists()


def test_loaded_model_needs_its_tokenizer(tiny_gpt2_path):
    with pytest.raises(ValueError, match="needs its tokenizer: pass tokenizer="):
        la.LoRA().prepare(_base_model(tiny_gpt2_path))


# ------------------------------------------------------------------------------------ accounting before download
def test_count_parameters_for_mistral_7b_matches_peft_on_meta():
    from accelerate import init_empty_weights
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config, MistralConfig

    cfg = MistralConfig()  # Mistral-7B's shape
    counts = la.count_parameters_for(cfg, la.LoRA(r=8))
    with init_empty_weights():
        ref = get_peft_model(AutoModelForCausalLM.from_config(cfg),
                             LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    trainable, total = ref.get_nb_trainable_parameters()
    assert counts == {"trainable": trainable, "total": total}
    # by hand: q/o map 4096 -> 4096, k/v map 4096 -> 1024 (8 KV heads of 128), 32 layers
    h, kv = cfg.hidden_size, cfg.num_key_value_heads * cfg.head_dim
    assert counts["trainable"] == cfg.num_hidden_layers * 8 * (2 * (h + h) + 2 * (h + kv)) == 6_815_744
    assert 7.2e9 < counts["total"] < 7.3e9
    assert la.count_parameters_for(cfg, la.QLoRA(r=8)) == counts  # 4-bit weights counted unpacked

    medium = GPT2Config(n_embd=1024, n_layer=24, n_head=16)
    full = la.count_parameters_for(medium, la.FullFineTuning())
    assert full["trainable"] == full["total"] and 3.5e8 < full["total"] < 3.6e8
    assert full["trainable"] / counts["trainable"] > 40


def test_count_parameters_for_equals_prepare(tiny_gpt2_path):
    for recipe in (la.LoRA(r=4, target_modules="all-linear"), la.LoRA(r=2, variant="dora"), la.FullFineTuning()):
        model, _ = recipe.prepare(tiny_gpt2_path)
        assert la.count_parameters_for(tiny_gpt2_path, recipe) == recipe.count_parameters(model)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        la.count_parameters_for("./no/such/model", la.LoRA())


def test_float_token_ids_are_refused_not_truncated(tiny_gpt2_path, ba_docs, tmp_path, monkeypatch):
    import numpy as np

    # integer ids of any kind pack as before (numpy and 0-d tensors included)
    assert la.pack_documents([[1, np.int64(2)], [torch.tensor(3)]], 2, eos_id=0)[0] == [[1, 2], [0, 3]]
    with pytest.raises(TypeError, match=r"token_ids\[1\]\[0\] is 2.7 \(float\).*never truncated"):
        la.pack_documents([[1], [2.7]], 2)
    with pytest.raises(TypeError, match=r"token_ids\[0\]\[0\] is 3.0"):  # not silently 3 either
        la.pack_documents([[3.0]], 1)
    with pytest.raises(TypeError, match=r"trainable_token_indices\[1\] is 2.5"):
        la.LoRA(trainable_token_indices=[1, 2.5])
    with pytest.raises(TypeError, match=r"trainable_token_indices\['wte'\]\[0\] is 0.5"):
        la.LoRA(trainable_token_indices={"wte": [0.5]})
    monkeypatch.setattr(_trainer, "build_trainer", _no_training)
    with pytest.raises(TypeError, match=r"train_dataset: input_ids holds float\d* values"):
        la.LoRA(r=4).train(tiny_gpt2_path, train_dataset=[{"input_ids": [1.0, 2.0, 3.0]}] * 4,
                           output_dir=tmp_path, **FAST)


def test_continuing_an_adapter_with_another_recipe_is_an_error(tiny_gpt2_path, ba_docs, tmp_path, monkeypatch):
    first = la.LoRA(r=4, alpha=8, dropout=0.0).train(tiny_gpt2_path, ba_docs[:8], output_dir=tmp_path / "1", **FAST)
    folder = tmp_path / "1"

    def no_loading(*a, **k):
        raise AssertionError("weights loaded although the recipe does not match the adapter")

    with monkeypatch.context() as m:
        m.setattr(_loading, "load_model", no_loading)
        m.setattr(_packing, "pack_texts", no_loading)
        for recipe, fields in [(la.LoRA(r=8, alpha=8, dropout=0.0), "r: adapter 4, recipe 8"),
                               (la.LoRA(r=4, alpha=16, dropout=0.0), "alpha: adapter 8.0, recipe 16.0"),
                               (la.LoRA(r=4, alpha=8, dropout=0.0, variant="dora"), "variant: adapter None, recipe 'dora'"),
                               (la.LoRA(r=4, alpha=8, dropout=0.0, target_modules=["c_attn"]),
                                "target_modules: adapter ['attn.c_proj', 'c_attn'], recipe ['c_attn']"),
                               (la.LoRA(r=4, alpha=8, dropout=0.0, target_modules="all-linear"), "target_modules")]:
            with pytest.raises(ValueError, match=re.escape(fields) + r".*LoRA\.from_adapter\("):
                recipe.train(folder, ba_docs[:8], output_dir=tmp_path / "x", **FAST)
            with pytest.raises(ValueError, match=re.escape(fields)):
                recipe.prepare(folder)
        # a loaded PeftModel is checked the same way
        with pytest.raises(ValueError, match=r"the PeftModel's active adapter.*r: adapter 4, recipe 8"):
            la.LoRA(r=8, alpha=8, dropout=0.0).train(first.model, ba_docs[:8], tokenizer=first.tokenizer,
                                                    output_dir=tmp_path / "x", **FAST)
    # asked for explicitly: the adapter's own settings continue it, and the record shows them
    own = la.LoRA.from_adapter(folder)
    assert own == la.LoRA(r=4, alpha=8, dropout=0.0, target_modules=["attn.c_proj", "c_attn"])
    assert la.LoRA.from_adapter(first.model) == own
    run = own.train(folder, ba_docs[:8], output_dir=tmp_path / "2", **{**FAST, "max_steps": 1})
    recorded = json.loads((tmp_path / "2" / "recipe.json").read_text())
    assert run.metrics["recipe"] == recorded == own.to_dict() and recorded["r"] == 4 and recorded["alpha"] == 8.0
    assert la.QLoRA.from_adapter(folder).quantize_base and la.QLoRA.from_adapter(folder).r == 4
    with pytest.raises(FileNotFoundError, match="holds no adapter_config.json"):
        la.LoRA.from_adapter(tmp_path)

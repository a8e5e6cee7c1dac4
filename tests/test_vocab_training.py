"""What trains after a vocabulary extension: the new rows change and frozen original rows stay exactly as
they were, under full fine-tuning, LoRA and QLoRA (real bitsandbytes 4-bit on CPU); the extended model
saves and reloads (adapter + resized embeddings + tokenizer) with identical logits; the vocabulary stage."""

from __future__ import annotations

import pytest
import torch

import lowres_adapt as la
from lowres_adapt.tokenization import new_token_peft_kwargs
from test_vocab import BA, RU

SETTINGS = dict(max_steps=3, block_size=32, batch_size=2, learning_rate=5e-2, logging_steps=1)


@pytest.fixture(scope="module")
def ru_tok():
    return la.train_tokenizer(RU, vocab_size=300)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def extended_dir(request, ru_tok, tmp_path_factory):
    """(folder of the extended base, VocabularyExtension, old vocabulary size): tied GPT-2 and untied Llama."""
    base = la.build_tiny_model(request.param, ru_tok, hidden_size=32, num_layers=1, num_heads=2, max_positions=64)
    model, tok, info = la.extend_vocabulary(base, ru_tok, BA, max_new_tokens=30, vocab_size=500, init="merge")
    path = tmp_path_factory.mktemp(f"extended-{request.param}")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, info, len(ru_tok)


def _effective_rows(model, n_rows: int):
    """Input embedding rows as the forward pass sees them, and the logits' head rows (through PEFT layers)."""
    ids = torch.arange(n_rows)[None]
    emb = model.get_input_embeddings()(ids)[0].detach().float()
    head = model.get_output_embeddings()
    eye = torch.eye(emb.shape[1])
    logits = head(eye).detach().float().T  # row i: the head's row of token i (float32 on CPU, 4-bit bases too)
    return emb, logits


def _check_rows(before, after, n_old: int, new_ids: list[int]):
    """Original rows exactly equal; new input rows of tokens in the trained blocks moved; new head rows moved."""
    for kind, b, a in zip(("input", "head"), before, after, strict=True):
        assert torch.equal(a[:n_old], b[:n_old]), f"an original {kind} row moved"
        moved = (a[new_ids] - b[new_ids]).abs().sum(-1) > 0
        # every head row gets a gradient through the softmax; an input row only if its token was read
        assert moved.float().mean() > 0.9 if kind == "head" else moved.any(), f"the new {kind} rows did not train"


def test_full_fine_tuning_can_freeze_the_original_rows(extended_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    path, info, n_old = extended_dir
    before = AutoModelForCausalLM.from_pretrained(path)
    kwargs = new_token_peft_kwargs(before, info)
    recipe = la.FullFineTuning(**kwargs)
    run = recipe.train(str(path), BA, output_dir=tmp_path / "frozen", seed=0, **SETTINGS)
    b_emb, b_head = _effective_rows(before, len(info.new_token_ids) + n_old)
    a_emb, a_head = _effective_rows(run.model, len(info.new_token_ids) + n_old)
    _check_rows((b_emb, b_head), (a_emb, a_head), n_old, info.new_token_ids)
    rest = [n for n, _ in before.named_parameters() if "wte" not in n and "embed" not in n and "lm_head" not in n]
    moved = dict(run.model.named_parameters())
    assert any(not torch.equal(dict(before.named_parameters())[n], moved[n].detach()) for n in rest)
    width = before.get_input_embeddings().weight.shape[1]
    tied = before.get_output_embeddings().weight is before.get_input_embeddings().weight
    total = sum(p.numel() for p in before.parameters())
    assert run.metrics["trainable_params"] == total - n_old * width * (1 if tied else 2)
    # without freezing every row trains
    free = la.FullFineTuning().train(str(path), BA, output_dir=tmp_path / "free", seed=0, **SETTINGS)
    f_emb, _ = _effective_rows(free.model, n_old)
    assert not torch.equal(f_emb, b_emb[:n_old])
    with pytest.raises(ValueError, match="weight_decay"):
        recipe.train(str(path), BA, output_dir=tmp_path / "wd", weight_decay=0.1, **SETTINGS)


@pytest.mark.parametrize("recipe_cls", [la.LoRA, la.QLoRA])
def test_adapters_train_new_rows_save_and_reload_with_identical_logits(extended_dir, recipe_cls, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, info, n_old = extended_dir
    plain = AutoModelForCausalLM.from_pretrained(path)
    recipe = recipe_cls(r=4, target_modules="all-linear", **new_token_peft_kwargs(plain, info))
    n_rows = n_old + len(info.new_token_ids)
    run = recipe.train(str(path), BA, output_dir=tmp_path / "run", seed=0, **SETTINGS)
    run.model.eval()
    if recipe_cls is la.QLoRA:
        assert run.model.base_model.model.is_loaded_in_4bit
        before = recipe_cls(r=4, target_modules="all-linear").prepare(str(path))[0]
    else:
        before = plain
    _check_rows(_effective_rows(before.eval(), n_rows), _effective_rows(run.model, n_rows), n_old,
                info.new_token_ids)

    # reload: the extended base (its folder) + the adapter + the tokenizer saved with it
    tok = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert len(tok) == n_rows
    ids = tok(BA[0], return_tensors="pt")["input_ids"][:, :48]  # within the 64 positions
    assert set(ids[0].tolist()) & set(info.new_token_ids)
    base = recipe_cls(r=4).prepare(str(path))[0].get_base_model() if recipe_cls is la.QLoRA else \
        AutoModelForCausalLM.from_pretrained(path)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, run.model(ids).logits)


def test_modules_to_save_trains_full_copies_and_reloads(extended_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, info, n_old = extended_dir
    plain = AutoModelForCausalLM.from_pretrained(path)
    recipe = la.LoRA(r=4, **new_token_peft_kwargs(plain, info, how="modules_to_save"))
    run = recipe.train(str(path), BA, output_dir=tmp_path / "run", seed=0, **SETTINGS)
    run.model.eval()
    emb, _ = _effective_rows(run.model, n_old)
    assert not torch.equal(emb, plain.get_input_embeddings().weight.detach()[:n_old])  # old rows train too
    tok = AutoTokenizer.from_pretrained(tmp_path / "run")
    ids = tok(BA[1], return_tensors="pt")["input_ids"][:, :48]
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, run.model(ids).logits)


def test_vocabulary_stage_extends_trains_new_rows_at_equal_bytes(ru_tok, tmp_path):
    from transformers import AutoModelForCausalLM

    base_dir = tmp_path / "base"
    la.build_tiny_model("llama", ru_tok, hidden_size=32, num_layers=1, num_heads=2,
                        max_positions=64).save_pretrained(base_dir)
    ru_tok.save_pretrained(base_dir)
    staged = la.StagedRecipe(la.LoRA(r=4), [la.Stage("v", kind="vocabulary", new_tokens=30, init="merge"),
                                            la.Stage("c", max_steps=8)])
    assert la.AdaptationRecipe.from_dict(staged.to_dict()) == staged
    run = staged.train(str(base_dir), BA, output_dir=tmp_path / "run", block_size=32, batch_size=2, seed=0)
    vocab = run.metrics["stages"][0]
    assert vocab["kind"] == "vocabulary" and vocab["added"] == 30 and vocab["init"] == "merge"
    assert vocab["rows"] == "new" and set(vocab["recipe_changes"]) == {"trainable_token_indices"}
    ext_tok = run.tokenizer
    ratio = (sum(len(x) for x in ext_tok(BA, add_special_tokens=False)["input_ids"])
             / sum(len(x) for x in ru_tok(BA, add_special_tokens=False)["input_ids"]))
    assert ratio < 0.9 and vocab["scaled_max_steps"]["c"] == {"before": 8, "after": round(8 * ratio),
                                                                "token_ratio": pytest.approx(ratio)}
    assert run.metrics["stages"][1]["global_step"] == round(8 * ratio)
    old = AutoModelForCausalLM.from_pretrained(base_dir)
    emb, _ = _effective_rows(run.model, len(ext_tok))
    assert torch.equal(emb[:len(ru_tok)], old.get_input_embeddings().weight.detach())
    extended = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "stages" / "1-v")
    moved = (emb[len(ru_tok):] - extended.get_input_embeddings().weight.detach()[len(ru_tok):]).abs().sum(-1) > 0
    assert moved.any()


def test_vocabulary_stage_bad_input():
    with pytest.raises(ValueError, match="needs new_tokens"):
        la.Stage("v", kind="vocabulary")
    with pytest.raises(ValueError, match="known inits"):
        la.Stage("v", kind="vocabulary", new_tokens=10, init="fvt")
    with pytest.raises(ValueError, match="does not train"):
        la.Stage("v", kind="vocabulary", new_tokens=10, max_steps=5)
    with pytest.raises(ValueError, match="rows must be one of"):
        la.Stage("v", kind="vocabulary", new_tokens=10, rows="old")
    with pytest.raises(ValueError, match="new_tokens is for kind='vocabulary'"):
        la.Stage("c", new_tokens=10)
    with pytest.raises(ValueError, match="must be the first stage"):
        la.StagedRecipe(la.LoRA(), [la.Stage("c"), la.Stage("v", kind="vocabulary", new_tokens=10)])
    with pytest.raises(ValueError, match="must be the first stage"):
        la.StagedRecipe(la.LoRA(), [la.Stage("v", kind="vocabulary", new_tokens=10)])


def test_a_study_grid_of_inits_and_sizes_is_planned_with_distinct_labels(tmp_path):
    def arm(n, init):
        return la.StagedRecipe(la.FullFineTuning(), [la.Stage(f"v{n}-{init}", kind="vocabulary", new_tokens=n,
                                                              init=init), la.Stage("c")])

    recipes = [la.FullFineTuning()] + [arm(n, init) for n in (100, 1000) for init in ("mean", "merge")]
    study = la.Study(models=["tiny:gpt2"], recipes=recipes, seeds=[0, 1], corpus="sample:ba",
                     output_dir=tmp_path / "study", progress=False)
    plan = study.plan()
    assert len(plan) == 10 and "tiny-gpt2__full-v1000-merge-c__s1" in plan and "tiny-gpt2__full__s0" in plan


def test_instruction_stage_after_a_vocabulary_stage_uses_the_extended_tokens(ru_tok, tmp_path):
    base_dir = tmp_path / "base"
    la.build_tiny_model("gpt2", ru_tok, hidden_size=32, num_layers=1, num_heads=2,
                        max_positions=64).save_pretrained(base_dir)
    ru_tok.save_pretrained(base_dir)
    pairs = [(BA[k][:20], BA[k + 1][:30]) for k in range(4)]
    staged = la.StagedRecipe(la.FullFineTuning(), [la.Stage("v", kind="vocabulary", new_tokens=30),
                                                   la.Stage("i", kind="instruction", template="{prompt}\n")])
    # one epoch at batch 1: the tokens read are exactly the examples' tokens
    run = staged.train(str(base_dir), BA, data={"i": pairs}, output_dir=tmp_path / "run", block_size=64,
                       batch_size=1, max_steps=4, seed=0)
    build = la.recipes.build_instruction_dataset
    extended = sum(len(ex["input_ids"]) for ex in build(run.tokenizer, pairs, template="{prompt}\n", max_length=64))
    old = sum(len(ex["input_ids"]) for ex in build(ru_tok, pairs, template="{prompt}\n", max_length=64))
    assert extended < old and run.metrics["stages"][1]["train_tokens"] == extended


def test_new_fields_leave_earlier_recipe_dicts_unchanged():
    """Study fingerprints hash recipe dicts: fields added for this feature are left out at their defaults."""
    assert "ensure_weight_tying" not in la.LoRA().to_dict()
    assert "trainable_token_indices" not in la.FullFineTuning().to_dict()
    assert set(la.Stage("c").to_dict()).isdisjoint({"new_tokens", "init", "rows", "equal_bytes"})
    for recipe in (la.LoRA(ensure_weight_tying=True), la.FullFineTuning(trainable_token_indices={"wte": [5]}),
                   la.StagedRecipe(la.LoRA(), [la.Stage("v", kind="vocabulary", new_tokens=5, init="merge",
                                                        rows="all"), la.Stage("c")])):
        assert la.AdaptationRecipe.from_dict(recipe.to_dict()) == recipe

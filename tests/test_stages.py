"""Staged adaptation: stages run in order on one model, instruction loss on responses only, round trips."""

from __future__ import annotations

import copy
import inspect
import json
import pickle

import pytest
import torch

import lowres_adapt as la
from lowres_adapt.recipes.staged import DEFAULT_TEMPLATE, build_instruction_dataset

PAIRS = [
    {"prompt": "Башҡортостандың башҡалаһы ниндәй ҡала?", "response": "Өфө ҡалаһы."},
    {"prompt": "Урал тауҙары ниндәй?", "response": "Бик бейек һәм матур."},
    {"prompt": "Әбейем нимә бешерә?", "response": "Тәмле бәлеш бешерә."},
    {"prompt": "Балалар ҡайҙа бара?", "response": "Балалар мәктәпкә бара."},
]


def test_round_trip_every_form():
    staged = la.StagedRecipe(la.LoRA(r=4, trainable_token_indices=[5, 6]), stages=[
        la.Stage("c", max_steps=3, learning_rate=1e-3, data="corpus.jsonl"),
        la.Stage("i", kind="instruction", data="pairs.jsonl", template="Q: {prompt}\nA: ", block_size=64,
                 training_args={"optim": "adamw_torch"}),
    ])
    d = staged.to_dict()
    assert d["recipe"] == "staged" and d["base"]["recipe"] == "lora" and d["label"] == "c+i"
    assert json.loads(json.dumps(d)) == d  # JSON friendly
    again = la.AdaptationRecipe.from_dict(json.loads(json.dumps(d)))
    assert again == staged and isinstance(again, la.StagedRecipe) and again.base == staged.base
    assert pickle.loads(pickle.dumps(staged)) == staged
    assert copy.deepcopy(staged) == staged
    assert staged.copy(label="x").label == "x" and staged.copy(label="x") != staged
    assert la.Stage.from_dict(staged.stages[1].to_dict()) == staged.stages[1]
    assert la.StagedRecipe(la.FullFineTuning(), [la.Stage("c")]) != la.StagedRecipe(la.LoRA(), [la.Stage("c")])


def test_variants_llamaturk():
    c, i = la.Stage("c", max_steps=4), la.Stage("i", kind="instruction", max_steps=2)
    v = la.StagedRecipe.variants(la.LoRA(r=4), c, i)
    assert {k: [s.name for s in r.stages] for k, r in v.items()} == {"c": ["c"], "c+i": ["c", "i"], "i": ["i"]}
    assert all(r.base == la.LoRA(r=4) and r.label == k for k, r in v.items())
    with pytest.raises(ValueError, match="causal_lm stage then an instruction stage"):
        la.StagedRecipe.variants(la.LoRA(), i, c)


def test_instruction_examples_score_the_response_only(tiny_tokenizer):
    tok = tiny_tokenizer
    examples = build_instruction_dataset(tok, PAIRS + [("Сәләм!", "Сәләм, дуҫым.")])
    assert len(examples) == 5
    for ex, pair in zip(examples, PAIRS + [{"prompt": "Сәләм!", "response": "Сәләм, дуҫым."}], strict=True):
        prompt_ids = tok(DEFAULT_TEMPLATE.format(prompt=pair["prompt"]))["input_ids"]
        response_ids = tok(pair["response"])["input_ids"]
        assert ex["input_ids"] == [tok.eos_token_id] + prompt_ids + response_ids + [tok.eos_token_id]
        assert ex["labels"] == [-100] * (1 + len(prompt_ids)) + response_ids + [tok.eos_token_id]
        assert tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]) \
            == pair["response"] + tok.eos_token
    # cut on the right to max_length; an example left without a response token is dropped
    n_prompt = 1 + len(tok(DEFAULT_TEMPLATE.format(prompt=PAIRS[0]["prompt"]))["input_ids"])
    cut = build_instruction_dataset(tok, PAIRS[:1] + PAIRS[:1], max_length=n_prompt + 2)
    assert [len(e["input_ids"]) for e in cut] == [n_prompt + 2] * 2 and cut[0]["labels"][-2:] != [-100, -100]
    with pytest.raises(ValueError, match="no instruction example keeps a response token"):
        build_instruction_dataset(tok, PAIRS[:1], max_length=n_prompt)


def test_instruction_loss_is_on_responses_only(tiny_llama_path, tmp_path):
    """Trainer's first-step loss (learning rate ~0, one batch of every example) equals the mean
    cross-entropy over response tokens computed by hand."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_path)
    staged = la.StagedRecipe(la.FullFineTuning(), [la.Stage("i", kind="instruction", max_steps=1,
                                                            batch_size=len(PAIRS), learning_rate=1e-12)])
    run = staged.train(tiny_llama_path, data={"i": PAIRS}, output_dir=tmp_path, logging_steps=1, block_size=128)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path).eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for ex in build_instruction_dataset(tok, PAIRS):
            ids = torch.tensor([ex["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
            for pos, lab in enumerate(ex["labels"][1:]):
                if lab != -100:
                    nll -= float(logp[pos, lab])
                    n += 1
    assert run.metrics["train_loss"] == pytest.approx(nll / n, rel=1e-4)
    prompt_only = sum(len(e["labels"]) for e in build_instruction_dataset(tok, PAIRS)) - n
    assert prompt_only > n / 2  # the prompts are a real share of the tokens that were left unscored


def test_two_stages_continue_one_lora_adapter(tiny_gpt2_path, ba_docs, tmp_path):
    staged = la.StagedRecipe(la.LoRA(r=4), [
        la.Stage("c", max_steps=2, learning_rate=1e-2),
        la.Stage("i", kind="instruction", max_steps=3, learning_rate=5e-3, block_size=96),
    ])
    run = staged.train(tiny_gpt2_path, ba_docs, eval_texts=ba_docs[:2], data={"i": PAIRS}, output_dir=tmp_path,
                       block_size=64, batch_size=2)
    stages = run.metrics["stages"]
    assert [(s["stage"], s["global_step"], s["learning_rate"]) for s in stages] == [("c", 2, 1e-2),
                                                                                   ("i", 3, 5e-3)]
    assert stages[0]["block_size"] == 64 and stages[1]["block_size"] == 96
    assert run.metrics["train_tokens"] == stages[0]["train_tokens"] + stages[1]["train_tokens"]
    assert stages[0]["train_tokens"] == 2 * 2 * 64  # packed blocks: 2 steps x 2 blocks x 64 tokens
    assert run.metrics["eval_loss"] == stages[1]["eval_loss"] and run.metrics["max_steps"] == 5
    # one adapter, trained by both stages: stage 2 starts from stage 1's adapter and moves it further
    assert list(run.model.peft_config) == ["default"]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def lora_b(path):
        m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), path)
        return torch.cat([p.flatten() for n, p in m.named_parameters() if "lora_B" in n])

    after_c, after_i = lora_b(tmp_path / "stages" / "1-c"), lora_b(tmp_path)
    assert after_c.abs().sum() > 0 and not torch.equal(after_c, after_i)
    final = torch.cat([p.detach().flatten() for n, p in run.model.named_parameters() if "lora_B" in n])
    torch.testing.assert_close(final, after_i)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["stage"] for s in saved["stages"]] == ["c", "i"]
    assert la.AdaptationRecipe.from_dict(json.loads((tmp_path / "recipe.json").read_text())) == staged
    assert {h["stage"] for h in run.log_history} == {"c", "i"}


def test_extended_vocabulary_then_stages(tiny_gpt2_path, ba_docs, tmp_path):
    """Vocabulary extension + LoRA with trainable new rows, through a staged run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    model, tok, info = la.extend_vocabulary(base, AutoTokenizer.from_pretrained(tiny_gpt2_path), ba_docs,
                                            max_new_tokens=8, vocab_size=800)
    recipe = la.LoRA(r=2, **la.vocab.new_token_peft_kwargs(model, info))
    new_rows = model.get_input_embeddings().weight[info.new_token_ids].detach().clone()
    run = la.StagedRecipe(recipe, [la.Stage("c", max_steps=2, learning_rate=1e-2)]).train(
        model, ba_docs, tokenizer=tok, output_dir=tmp_path, block_size=64, batch_size=2)
    trained = run.model.get_input_embeddings()(torch.tensor(info.new_token_ids)).detach()
    assert not torch.allclose(trained, new_rows)  # the new rows learnt


def test_bad_input_fails_before_training(tiny_gpt2_path, ba_docs, tmp_path):
    with pytest.raises(ValueError, match="Stage.kind must be one of"):
        la.Stage("x", kind="instructions")
    with pytest.raises(ValueError, match="unique"):
        la.StagedRecipe(la.LoRA(), [la.Stage("c"), la.Stage("c")])
    with pytest.raises(ValueError, match="at least one Stage"):
        la.StagedRecipe(la.LoRA(), [])
    with pytest.raises(ValueError, match="template must contain"):
        la.Stage("i", kind="instruction", template="no slot")
    with pytest.raises(ValueError, match="unknown Stage field"):
        la.Stage.from_dict({"name": "c", "max_step": 3})
    with pytest.raises(ValueError, match="training_args must not set"):
        la.Stage("c", training_args={"max_steps": 3})
    staged = la.StagedRecipe(la.LoRA(r=2), [la.Stage("c", max_steps=1), la.Stage("i", kind="instruction")])
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="instruction stage 'i' has no pairs"):
        staged.train(tiny_gpt2_path, ba_docs, output_dir=out, block_size=32)
    with pytest.raises(ValueError, match=r"stages \['x'\]"):
        staged.train(tiny_gpt2_path, ba_docs, data={"x": PAIRS}, output_dir=out)
    with pytest.raises(ValueError, match="stage 'c': block_size=512 is larger"):
        staged.train(tiny_gpt2_path, ba_docs, data={"i": PAIRS}, output_dir=out, block_size=512)
    # a stage's own block_size is checked too, before the valid first stage trains
    late = la.StagedRecipe(la.LoRA(r=2), [la.Stage("c", max_steps=1), la.Stage("i", kind="instruction",
                                                                                block_size=129)])
    with pytest.raises(ValueError, match="stage 'i': block_size=129 is larger than the model's context of 128"):
        late.train(tiny_gpt2_path, ba_docs, data={"i": PAIRS}, output_dir=out, block_size=32)
    # no block_size anywhere: the recipe's default (256) is checked against the tiny model's 128 positions
    default = inspect.signature(la.LoRA.train).parameters["block_size"].default
    assert default > 128
    with pytest.raises(ValueError, match=rf"block_size={default} \(the recipe's default"):
        staged.train(tiny_gpt2_path, ba_docs, data={"i": PAIRS}, output_dir=out)
    with pytest.raises(ValueError, match="merge_adapter=True needs an adapter recipe"):
        la.StagedRecipe(la.FullFineTuning(), staged.stages).train(tiny_gpt2_path, ba_docs, data={"i": PAIRS},
                                                                  output_dir=out, block_size=32, merge_adapter=True)
    with pytest.raises(ValueError, match="merge_adapter=True with QLoRA needs the base model's folder"):
        la.StagedRecipe(la.QLoRA(r=2), staged.stages).train(tiny_gpt2_path, ba_docs, data={"i": PAIRS},
                                                            output_dir=out, block_size=32, merge_adapter=True)
    missing = la.StagedRecipe(la.LoRA(), [la.Stage("i", kind="instruction", data=str(tmp_path / "missing.jsonl"))])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        missing.train(tiny_gpt2_path, output_dir=out, block_size=32)
    assert not (out / "stages").exists()  # nothing trained


def test_base_recipe_decides_what_trains():
    """A StagedRecipe counts and adapts parameters exactly as its base recipe (no weights loaded)."""
    import transformers

    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=120)
    for base in (la.FullFineTuning(), la.LoRA(r=4), la.LoRA(r=2, variant="dora")):
        staged = la.StagedRecipe(base, [la.Stage("c")])
        assert la.count_parameters_for(cfg, staged) == la.count_parameters_for(cfg, base)
    lora = la.count_parameters_for(cfg, la.StagedRecipe(la.LoRA(r=4), [la.Stage("c")]))
    # "auto" targets GPT-2's attention: c_attn (32 -> 96) and c_proj (32 -> 32), r * (in + out) each, 2 layers
    assert lora["trainable"] == 2 * 4 * ((32 + 96) + (32 + 32))


def test_staged_dict_loads_without_importing_stages_first():
    """A study YAML names recipe: staged; from_dict must find it in a fresh interpreter."""
    import json
    import subprocess
    import sys

    from lowres_adapt import LoRA
    from lowres_adapt.recipes.staged import Stage, StagedRecipe

    recipe = StagedRecipe(LoRA(r=4), [Stage("c"), Stage("i", kind="instruction")])
    code = ("import json, sys, lowres_adapt as la\n"
            "r = la.AdaptationRecipe.from_dict(json.loads(sys.stdin.read()))\n"
            "print(json.dumps(r.to_dict()))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(recipe.to_dict()),
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == recipe.to_dict()

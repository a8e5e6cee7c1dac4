"""The paper's architectures, end to end on tiny configs: every family of the paper's grid and today's
common bases (gpt2: DistilGPT2/GPT-2, phi: Phi-2, qwen2: Qwen2.5, llama: DeepSeek-7B, mistral, gemma2,
gemma3 text, qwen3) and a multimodal wrapper (Gemma3ForConditionalGeneration with a tiny vision tower).

Each family trains full, LoRA and QLoRA for two steps, then evaluates, generates, plans and extends the
vocabulary, with values checked against a second computation: trained weights moved and stayed finite,
the trainable count equals ``count_parameters_for``'s and the planner's, bits per byte equals a
brute-force sum of next-token log-probabilities, the planned step peak equals the measured one.
"""

from __future__ import annotations

import math

import pytest

import lowres_adapt as la

TOLERANCE = 0.03  # |planned / measured - 1| for a step's tensor peak, as in tests/test_memory_plan.py
BATCH, BLOCK = 2, 32


def _text_kwargs(vocab: int, tok) -> dict:
    return {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def _config(family: str, tok):
    import transformers as tf

    vocab, kw = len(tok), _text_kwargs(len(tok), tok)
    if family == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if family == "phi":  # Phi-2: partial rotary, parallel attention/MLP, one LayerNorm, "dense" output
        return tf.PhiConfig(**{**kw, "num_key_value_heads": 4}, partial_rotary_factor=0.5)
    if family == "qwen2":
        return tf.Qwen2Config(**kw, tie_word_embeddings=True)
    if family == "llama":
        return tf.LlamaConfig(**{**kw, "num_key_value_heads": 4}, tie_word_embeddings=False)
    if family == "mistral":
        return tf.MistralConfig(**kw, sliding_window=16, tie_word_embeddings=False)
    if family == "gemma2":
        return tf.Gemma2Config(**kw, head_dim=8, sliding_window=16, query_pre_attn_scalar=8)
    if family == "gemma3":
        return tf.Gemma3TextConfig(**kw, head_dim=8, sliding_window=16, query_pre_attn_scalar=8)
    if family == "qwen3":
        return tf.Qwen3Config(**kw, head_dim=8, tie_word_embeddings=True)
    if family == "gemma3-vision":
        text = tf.Gemma3TextConfig(**kw, head_dim=8, sliding_window=16, query_pre_attn_scalar=8)
        vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14)
        return tf.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4,
                               image_token_index=vocab - 1, boi_token_index=vocab - 2, eoi_token_index=vocab - 3)
    raise ValueError(family)


FAMILIES = ["gpt2", "phi", "qwen2", "llama", "mistral", "gemma2", "gemma3", "qwen3", "gemma3-vision"]
RECIPES = {"full": la.FullFineTuning, "lora": lambda: la.LoRA(r=4), "qlora": lambda: la.QLoRA(r=4)}


@pytest.fixture(scope="module")
def texts(ba_docs) -> dict[str, list[str]]:
    return la.split_documents(ba_docs, valid=0.1, test=0.1, seed=0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, texts) -> dict[str, object]:
    """Each family saved with seeded random weights and a byte-level BPE tokenizer trained in-process
    (a SentencePiece-style one, ``llama_bpe``, for the Llama-layout families)."""
    import torch
    from transformers import AutoModelForCausalLM

    toks = {kind: la.train_tokenizer(texts["train"], vocab_size=300, kind=kind, model_max_length=128)
            for kind in ("byte_bpe", "llama_bpe")}
    toks["llama_bpe"].pad_token = toks["llama_bpe"].eos_token
    out = {}
    for family in FAMILIES:
        tok = toks["llama_bpe" if family in ("llama", "mistral") else "byte_bpe"]
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_config(family, tok))
        path = tmp_path_factory.mktemp(f"arch-{family}")
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[family] = path
    return out


def _loaded(path, recipe):
    """The model ``recipe.train`` trains, loaded by the library's loader, adapted, in float32 on CPU."""
    from lowres_adapt.modeling import loading

    source = loading.resolve_model(str(path))
    model = loading.load_model(source, quantization=recipe._quantization(), dtype="float32",
                               adapters=recipe._adapters)
    return recipe._adapt(model), source.tokenizer


# ------------------------------------------------------------------------------------- train, then use
@pytest.mark.parametrize("recipe_name", list(RECIPES))
@pytest.mark.parametrize("family", FAMILIES)
def test_train_evaluate_generate(family, recipe_name, checkpoints, texts, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    recipe = RECIPES[recipe_name]()
    path = checkpoints[family]
    run = recipe.train(str(path), texts["train"], output_dir=tmp_path / "run", max_steps=2, block_size=BLOCK,
                       batch_size=BATCH, learning_rate=1e-2)
    m = run.metrics
    assert math.isfinite(m["train_loss"]) and m["global_step"] == 2
    expected = la.count_parameters_for(str(path), recipe)
    assert (m["trainable_params"], m["total_params"]) == (expected["trainable"], expected["total"])

    trained = dict(run.model.named_parameters())
    if recipe_name == "full":
        before = AutoModelForCausalLM.from_pretrained(path).state_dict()
        moved = [n for n, p in trained.items() if not torch.equal(p.detach().float(), before[n].float())]
        # every weight of the language model took a step; a vision tower (no gradient from text) is frozen
        tower = [n for n in trained if "vision_tower" in n or "multi_modal_projector" in n]
        assert moved == [n for n in trained if n not in tower]
        assert not any(trained[n].requires_grad for n in tower)
    else:
        lora_b = [p for n, p in trained.items() if "lora_B" in n]
        assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it learnt
    assert all(torch.isfinite(p).all() for p in trained.values())

    res = la.PerplexityEvaluator(bootstrap_samples=0).evaluate(run.model, run.tokenizer, texts["test"])
    assert math.isfinite(res.bits_per_byte) and res.bits_per_byte > 0
    assert res.n_bytes == sum(len(t.encode("utf-8")) for t in texts["test"])

    gens = la.generate(run.model, run.tokenizer, ["Башҡортостан", "Бөгөн"], seed=0, max_new_tokens=6)
    assert len(gens) == 2 and all(isinstance(g, str) for g in gens)
    assert la.generate(run.model, run.tokenizer, ["Башҡортостан", "Бөгөн"], seed=0, max_new_tokens=6) == gens


def test_bits_per_byte_equals_brute_force(checkpoints, texts):
    """Sum of -log p(token | prefix) over every token, with the prefix token (BOS) as first input, by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = checkpoints["mistral"]
    model, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    docs = [d[:120] for d in texts["test"]]
    nats = 0.0
    with torch.no_grad():
        for doc in docs:
            ids = [tok.bos_token_id] + tok(doc, add_special_tokens=False)["input_ids"]
            assert len(ids) <= 128  # one window
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), -1)
            nats -= logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    res = la.PerplexityEvaluator(bootstrap_samples=0).evaluate(model, tok, docs)
    assert res.n_bytes == n_bytes
    assert res.bits_per_byte == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)


# ------------------------------------------------------------------------------------------- the plan
# Gemma 3 under gradient checkpointing: the measured step holds a constant 18,368 bytes more than the
# simulated one (4.5% of this tiny step; 2.3% without checkpointing, and Gemma 2 shows 10,240), an
# allocation of Gemma's forward the meta trace misses. Strict: the mark fails once the planner catches it.
@pytest.mark.parametrize("family,recipe_name", [(f, r) for f in FAMILIES for r in ("lora", "qlora")])
def test_plan_matches_the_measured_step(family, recipe_name, checkpoints):
    from _step_measure import measure_training_step

    recipe = RECIPES[recipe_name]()
    model, _ = _loaded(checkpoints[family], recipe)
    counts = recipe.count_parameters(model)
    ckpt = recipe_name == "qlora"  # the recipe's default: checkpointing for QLoRA only
    # the measured step trains one document per row (no boundary, no block-diagonal mask): plan it so
    plan = la.plan_memory(str(checkpoints[family]), recipe, batch_size=BATCH, block_size=BLOCK, device="cpu",
                          dtype="float32", gradient_checkpointing=ckpt, packing="concatenated")
    assert plan.parameters["trainable"] == counts["trainable"] and plan.parameters["total"] == counts["total"]
    measured = measure_training_step(model, BATCH, BLOCK, gradient_checkpointing=ckpt)
    fixed = plan.terms["weights"] + plan.terms["adapter_weights"] + plan.terms["optimizer_states"]
    assert abs(fixed - measured["baseline"]) <= 64 * 16
    assert plan.total == pytest.approx(measured["peak"], rel=TOLERANCE)


# ------------------------------------------------------------------------------ vocabulary extension
@pytest.mark.parametrize("family", FAMILIES)
def test_extend_vocabulary(family, checkpoints, texts):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = checkpoints[family]
    base, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    old_rows = base.get_input_embeddings().weight.detach().clone()
    model, new_tok, info = la.extend_vocabulary(base, tok, texts["train"], max_new_tokens=20, min_frequency=2)
    n_new = len(info.new_token_ids)
    assert 0 < n_new <= 20 and len(new_tok) == len(tok) + n_new
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] >= len(new_tok) and torch.equal(emb[: old_rows.shape[0]], old_rows)
    assert info.fertility_after < info.fertility_before
    logits = model(torch.tensor([new_tok(texts["test"][0][:100], add_special_tokens=False)["input_ids"]])).logits
    assert logits.shape[-1] >= len(new_tok) and torch.isfinite(logits).all()


# ----------------------------------------------------------------------------------- the multimodal
def test_auto_targets_adapt_the_language_model_only(checkpoints):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(checkpoints["gemma3-vision"])
    assert type(base).__name__ == "Gemma3ForConditionalGeneration"
    vision = [n for n, _ in base.named_modules() if "vision_tower" in n and n.endswith("q_proj")]
    assert vision  # the tower has attention projections a suffix 'q_proj' would catch
    for which, recipe in (("attention", la.LoRA(r=4)), ("all-linear", la.LoRA(r=4, target_modules="all-linear"))):
        model = recipe._adapt(AutoModelForCausalLM.from_pretrained(checkpoints["gemma3-vision"]))
        adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_modules() if n.endswith("lora_A")}
        assert adapted and all("language_model" in n for n in adapted), which
        n_layers = 2 * (4 if which == "attention" else 7)  # q, k, v, o (+ gate, up, down) in 2 layers
        assert len(adapted) == n_layers

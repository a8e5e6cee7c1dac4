"""The memory planner against measurements and published figures.

Three parts (``--part``, default all CPU parts):

- ``measured``: for full / LoRA / QLoRA on tiny GPT-2 and Llama models built from a config, over several
  batch and block sizes, with and without gradient checkpointing, ``la.plan_memory``'s total next to the
  measured tensor-memory peak of a real training step (``lowres_adapt._plan_measure``: on CPU the model's
  and optimizer's tensors plus the PyTorch profiler's allocation peak; on CUDA max_memory_allocated),
  and the ratio predicted / measured.
- ``published``: the study grid's models (GPT-2 small / medium, Phi-2, Mistral-7B, Qwen2.5-7B,
  DeepSeek-LLM-7B base, and LLaMA-7B / 65B for the QLoRA paper) built on the meta device from their
  config.json values (written below, with their source): parameter counts, bf16 and NF4 weight bytes,
  QLoRA's quantization constants in bits per parameter, and the QLoRA-65B training plan.
- ``time``: the step FLOPs of two tiny Llama sizes; the throughput achieved on the first predicts the
  second's step time (an honest check of a FLOPs-based time estimate on this CPU).

Commands:

    python benchmarks/bench_memory_plan.py                                   # CPU, ~2 minutes
    python benchmarks/bench_memory_plan.py --part published                  # seconds, no training
    python benchmarks/bench_memory_plan.py --device cuda --part measured     # GPU: 7B-shaped LoRA/QLoRA too
    python benchmarks/bench_memory_plan.py --json benchmarks/results/memory_plan_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import lowres_adapt as la

# config.json values of the study's models (Hugging Face hub, as published by their authors; written
# here because the hub is unreachable from this machine). Parameter counts stated by the model cards.
PUBLISHED = {
    "gpt2 (openai-community/gpt2)": dict(
        model_type="gpt2", n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024,
        card="124M parameters", hub_file="model.safetensors 548 MB (fp32, with 12 x 4 MiB causal-mask buffers)"),
    "gpt2-medium (openai-community/gpt2-medium)": dict(
        model_type="gpt2", n_embd=1024, n_layer=24, n_head=16, vocab_size=50257, n_positions=1024,
        card="355M parameters", hub_file="model.safetensors 1.52 GB (fp32, with 24 x 4 MiB mask buffers)"),
    "phi-2 (microsoft/phi-2)": dict(
        model_type="phi", hidden_size=2560, intermediate_size=10240, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=51200, max_position_embeddings=2048, partial_rotary_factor=0.4,
        tie_word_embeddings=False, card="2.7 billion parameters", hub_file="2 safetensors shards, 5.00 + 0.56 GB (fp16)"),
    "Mistral-7B-v0.1 (mistralai)": dict(
        model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768, tie_word_embeddings=False,
        card="7.24B (hub safetensors count)", hub_file="2 safetensors shards, 9.94 + 4.54 GB (bf16)"),
    "Qwen2.5-7B (Qwen)": dict(
        model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072, tie_word_embeddings=False,
        card="7.61B parameters, 6.53B non-embedding", hub_file="4 safetensors shards, about 15.2 GB (bf16)"),
    "deepseek-llm-7b-base (deepseek-ai)": dict(
        model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=102400, max_position_embeddings=4096, tie_word_embeddings=False,
        card="7B (hub count 6.91B)", hub_file="2 shards, 9.97 + 3.85 GB (bf16)"),
    "LLaMA-7B (QLoRA paper's base)": dict(
        model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False,
        card="6.7B", hub_file="–"),
    "LLaMA-65B (QLoRA paper's base)": dict(
        model_type="llama", hidden_size=8192, intermediate_size=22016, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=64, vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False,
        card="65.2B", hub_file="–"),
}


def config_of(values: dict):
    from transformers import AutoConfig

    values = {k: v for k, v in values.items() if k not in ("card", "hub_file")}
    return AutoConfig.for_model(**values)


def tiny_configs():
    import transformers

    return {
        "gpt2": transformers.GPT2Config(vocab_size=2000, n_positions=512, n_embd=128, n_layer=3, n_head=4),
        "llama": transformers.LlamaConfig(vocab_size=2000, hidden_size=128, intermediate_size=352, num_hidden_layers=3,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                          tie_word_embeddings=False),
    }


def seven_b_config(layers: int):
    values = dict(PUBLISHED["Mistral-7B-v0.1 (mistralai)"], num_hidden_layers=layers)
    return config_of(values)


def real_model(config, recipe, device: str, dtype: str, folder: str):
    """The model ``recipe.train`` would train, from a folder of seeded random weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from lowres_adapt.modeling import loading as _loading

    if not os.path.isfile(os.path.join(folder, "config.json")):
        torch.manual_seed(0)
        with torch.device(device):
            AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).save_pretrained(folder)
    if recipe._quantize():
        source = _loading.ModelSource(name="bench", config=config, tokenizer=None, path=folder)
        model = _loading.load_model(source, quantization=recipe._quantization(), dtype=dtype, adapters=True)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).to(device)
    return recipe._adapt(model)


def part_measured(args) -> list[dict]:
    import gc

    import torch
    from _step_measure import measure_training_step

    rows = []
    if args.device == "cpu":
        grid = [(arch, cfg, r, b, s, ck) for arch, cfg in tiny_configs().items()
                for r in ("full", "lora", "qlora") for (b, s) in ((1, 256), (4, 128), (8, 64)) for ck in (False, True)]
        dtype, autocast = "float32", None
    else:  # a 7B-shaped model (Mistral-7B's config, --layers of them), as on a bf16 GPU
        cfg = seven_b_config(args.layers)
        grid = [("mistral-7b-shaped", cfg, r, b, s, ck) for r in ("lora", "qlora")
                for (b, s, ck) in ((1, 2048, True), (2, 1024, True), (1, 1024, False))]
        dtype, autocast = "bfloat16", torch.bfloat16
    folders: dict[str, str] = {}
    loaded: dict[tuple, object] = {}  # one model per (model, recipe): loading a 7B twice would cost minutes
    recipes = {"full": la.FullFineTuning(), "lora": la.LoRA(r=16), "qlora": la.QLoRA(r=16)}
    for arch, cfg, rname, b, s, ck in grid:
        recipe = recipes[rname]
        folder = folders.setdefault(arch, tempfile.mkdtemp(prefix=f"plan-{arch}-"))
        if (arch, rname) not in loaded:
            loaded.clear()
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
            loaded[(arch, rname)] = real_model(cfg, recipe, args.device, dtype, folder)
        model = loaded[(arch, rname)]
        t0 = time.perf_counter()
        plan = la.plan_memory(cfg, recipe, batch_size=b, block_size=s, dtype=dtype, gradient_checkpointing=ck,
                              device=args.device, mixed_precision="bf16" if autocast else None)
        plan_s = time.perf_counter() - t0
        measured = measure_training_step(model, b, s, gradient_checkpointing=ck, autocast=autocast)
        row = {"model": arch, "recipe": rname, "batch": b, "block": s, "checkpointing": ck,
               "predicted": plan.total, "measured": measured["peak"], "ratio": plan.total / measured["peak"],
               "weights_predicted": plan.terms["weights"] + plan.terms["adapter_weights"],
               "baseline_measured": measured["baseline"],
               "optimizer_predicted": plan.terms["optimizer_states"], "optimizer_measured": measured["optimizer_states"],
               "plan_seconds": round(plan_s, 2), "kind": measured["kind"]}
        rows.append(row)
        print(f"{arch:>18} {rname:>5} b={b:<2} s={s:<4} ckpt={'on ' if ck else 'off'}  predicted "
              f"{plan.total / 2**20:9.2f} MiB  measured {measured['peak'] / 2**20:9.2f} MiB  ratio {row['ratio']:.4f}"
              f"  (states {plan.terms['optimizer_states'] == measured['optimizer_states'] and 'exact' or 'DIFFER'})",
              flush=True)
        del model
    ratios = [r["ratio"] for r in rows]
    print(f"\n{len(rows)} cases: ratio predicted/measured min {min(ratios):.4f}, median "
          f"{statistics.median(ratios):.4f}, max {max(ratios):.4f}")
    return rows


def part_published(args) -> list[dict]:
    from lowres_adapt.planning import _model as _plan_model

    rows = []
    print(f"{'model':<44} {'params':>15} {'fp32 GB':>8} {'bf16 GB':>8} {'NF4 GB':>7} {'kept':>5} {'bits':>6} "
          f"{'no DQ':>6} {'DQ saves':>8}  card / hub file")
    for name, values in PUBLISHED.items():
        cfg = config_of(values)
        bf16 = la.plan_memory(cfg, la.LoRA(r=16), batch_size=1, block_size=8, device="cuda").weights_detail
        meta = _plan_model.build_meta_model(cfg, la.QLoRA(r=16), "bfloat16")
        nf4 = _plan_model.weight_terms(meta)
        no_dq = _plan_model.weight_terms(_plan_model.build_meta_model(cfg, la.QLoRA(r=16, double_quant=False),
                                                                     "bfloat16"))
        params = la.count_parameters_for(cfg, la.FullFineTuning())["total"]
        nf4_total = nf4["quantized"] + nf4["quantization_constants"] + nf4["unquantized"] + nf4["buffers"]
        row = {"model": name, "params": params, "bf16_bytes": bf16["unquantized"] + bf16["buffers"],
               "nf4_bytes": nf4_total, "nf4_packed": nf4["quantized"], "nf4_constants": nf4["quantization_constants"],
               "nf4_unquantized_fp32": nf4["unquantized"], "quantized_params": nf4["quantized_params"],
               "constant_bits_per_param": 8 * nf4["quantization_constants"] / nf4["quantized_params"],
               "constant_bits_per_param_without_dq": 8 * no_dq["quantization_constants"] / no_dq["quantized_params"],
               "double_quant_saving_bytes": no_dq["quantization_constants"] - nf4["quantization_constants"],
               "card": values["card"], "hub_file": values["hub_file"]}
        rows.append(row)
        row["fp32_bytes"] = 2 * row["bf16_bytes"]
        print(f"{name:<44} {params:>15,} {row['fp32_bytes'] / 1e9:>8.2f} {row['bf16_bytes'] / 1e9:>8.2f} "
              f"{nf4_total / 1e9:>7.2f} {nf4['unquantized'] / 1e9:>5.2f} {row['constant_bits_per_param']:>6.4f} "
              f"{row['constant_bits_per_param_without_dq']:>6.4f} {row['double_quant_saving_bytes'] / 1e9:>8.3f}  "
              f"{values['card']} / {values['hub_file']}")
    # QLoRA's headline: LLaMA-65B fine-tuned on one 48 GB GPU (r=64 on all linear layers, paged AdamW)
    cfg65 = config_of(PUBLISHED["LLaMA-65B (QLoRA paper's base)"])
    recipe = la.QLoRA(r=64, alpha=16, target_modules="all-linear")
    # a "48GB" card (RTX A6000) has 48 GiB; margin 0: do the tensors alone fit?
    plan = la.plan_memory(cfg65, recipe, batch_size=1, block_size=512, optimizer="paged_adamw_32bit",
                          device_memory="48GiB", margin=0.0)
    print(f"\nQLoRA LLaMA-65B, r=64 all-linear, batch 1 x 512 tokens, paged AdamW, checkpointing: tensors "
          f"{plan.total / 2**30:.2f} GiB; fit 48 GiB with no margin: {plan.fits} (largest batch "
          f"{plan.largest_batch_size}); with the default 10% margin: {plan.total <= 0.9 * 48 * 2**30}")
    print(plan.to_markdown())
    rows.append({"model": "LLaMA-65B QLoRA plan", "total": plan.total, "terms": plan.terms, "fits_48GB": plan.fits,
                 "largest_batch_size": plan.largest_batch_size})
    return rows


def part_time(args) -> list[dict]:
    """Achieved FLOP/s of one setup predicts the step time of others (CPU, LoRA, fp32): another batch and
    block on the same model, and a model three times wider."""
    import torch
    import transformers

    def timed(model, b, s) -> float:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
        ids = torch.randint(0, 2000, (b, s))
        times = []
        for i in range(args.rounds + 1):
            t0 = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:  # the first step warms up kernels and creates the optimizer states
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    rows = []
    models = {}
    for label, hidden, b, s in (("reference", 128, 4, 128), ("same model, batch 8 x 256", 128, 8, 256),
                                ("3x wider model", 384, 4, 128)):
        cfg = transformers.LlamaConfig(vocab_size=2000, hidden_size=hidden, intermediate_size=hidden * 3,
                                       num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=512)
        if hidden not in models:
            torch.manual_seed(0)
            models[hidden] = la.LoRA(r=16)._adapt(transformers.AutoModelForCausalLM.from_config(cfg))
        plan = la.plan_memory(cfg, la.LoRA(r=16), batch_size=b, block_size=s, device="cpu")
        rows.append({"case": label, "hidden": hidden, "batch": b, "block": s, "flops_per_step": plan.flops_per_step,
                     "seconds": timed(models[hidden], b, s)})
    achieved = rows[0]["flops_per_step"] / rows[0]["seconds"]
    print(f"achieved on the reference (hidden 128, batch 4 x 128): {achieved / 1e9:.2f} GFLOP/s "
          f"(threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f})")
    for row in rows[1:]:
        row["predicted_seconds"] = row["flops_per_step"] / achieved
        row["measured_over_predicted"] = row["seconds"] / row["predicted_seconds"]
        print(f"{row['case']:>28}: predicted {row['predicted_seconds']:.3f} s/step, measured {row['seconds']:.3f} "
              f"s/step, measured/predicted {row['measured_over_predicted']:.2f}")
    return rows


def main() -> None:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--part", choices=("all", "measured", "published", "time"), default="all")
    p.add_argument("--layers", type=int, default=32, help="decoder layers of the 7B-shaped model (cuda)")
    p.add_argument("--rounds", type=int, default=3, help="timed steps per size (time part)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    results = {"device": args.device, "load_average": os.getloadavg()[0]}
    if args.part in ("all", "measured"):
        results["measured"] = part_measured(args)
    if args.part in ("all", "published"):
        results["published"] = part_published(args)
    if args.part in ("all", "time") and args.device == "cpu":
        results["time"] = part_time(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

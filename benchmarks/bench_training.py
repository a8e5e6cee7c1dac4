"""Tokens per second of ``recipe.train`` against a plain ``Trainer`` + PEFT script with identical settings.

Both sides train the same model (same weights, LoRA config, block size, batch, steps, optimizer,
scheduler, seed) on the same packed blocks; the only difference is who builds the Trainer. They run
alternately, ``--rounds`` times each, in this process, and the ratio of the medians is printed
(target: >= 0.95, i.e. the library adds no overhead). The library side includes everything
``recipe.train`` does around ``trainer.train()`` except evaluation; throughput is measured from
``trainer.train``'s own runtime on both sides, so model loading and tokenization are not counted.

Commands:

    # tiny CPU run (a minute): a GPT-2-shaped model built from a config
    python benchmarks/bench_training.py --steps 10 --rounds 2

    # on a real base with the shared corpus
    nice -n 5 python benchmarks/bench_training.py --model ../shared/models/mini-gpt2-ru \\
        --data ../shared/data/bashkir/corpus-train.jsonl --steps 20 --rounds 3

    # on a GPU: also QLoRA vs LoRA vs full fine-tuning on a 7B-shaped model built from a config
    python benchmarks/bench_training.py --gpu-7b
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lowres_adapt as la


def plain_trainer_peft(model_path, tokenizer, blocks, args, targets, fan_in_fan_out) -> float:
    """The reference: what a user writes by hand with transformers + PEFT. Returns tokens/second."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    set_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets,
                                             fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM"))
    ds = Dataset.from_dict({"input_ids": blocks})

    def collate(examples):
        ids = torch.tensor([e["input_ids"] for e in examples], dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}

    targs = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=args.steps,
                              per_device_train_batch_size=args.batch_size, learning_rate=2e-4,
                              lr_scheduler_type="cosine", max_grad_norm=1.0, seed=args.seed, data_seed=args.seed,
                              logging_steps=10, save_strategy="no", report_to="none", remove_unused_columns=False,
                              bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
                              use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=torch.cuda.is_available())
    trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=collate)
    out = trainer.train()
    return args.steps * args.batch_size * args.block_size / out.metrics["train_runtime"]


def library(model_path, texts, args) -> float:
    run = la.LoRA(r=8, alpha=16, dropout=0.05).train(
        model_path, texts, output_dir=tempfile.mkdtemp(), max_steps=args.steps, batch_size=args.batch_size,
        block_size=args.block_size, learning_rate=2e-4, seed=args.seed, logging_steps=10,
        # plain float32 weights on CPU, bf16 autocast on a bf16 GPU: the same as the reference
        dtype="float32",
        packing="concatenated",  # the reference trains on plain blocks (bench_packing.py compares packings)
    )
    return run.metrics["tokens_per_second"]


def gpu_7b(steps: int) -> list[dict]:
    """QLoRA vs LoRA vs full on a Mistral-7B-shaped model (random weights saved once): tok/s and peak memory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig

    if not torch.cuda.is_available():
        print("no CUDA GPU: skipping the 7B-shaped comparison")
        return []
    folder = Path(tempfile.mkdtemp()) / "mistral-7b-shape"
    tok = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=2000)
    cfg = MistralConfig(vocab_size=len(tok), eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    AutoTokenizer.from_pretrained(folder)  # fail early on a bad save
    texts = la.sample_corpus("ba") * 20
    rows = []
    for recipe in (la.QLoRA(r=8), la.LoRA(r=8), la.FullFineTuning()):
        try:
            run = recipe.train(folder, texts, output_dir=tempfile.mkdtemp(), max_steps=steps, batch_size=1,
                               block_size=1024, gradient_checkpointing=True, optim="adamw_torch_fused"
                               if recipe.name != "qlora" else "paged_adamw_8bit", save_strategy="no")
            m = run.metrics
            rows.append({"recipe": recipe.name, "tokens_per_second": m["tokens_per_second"],
                         "peak_memory_gib": m["peak_memory_bytes"] / 2**30, "weight_gib": m["weight_bytes"] / 2**30,
                         "trainable_params": m["trainable_params"]})
        except torch.cuda.OutOfMemoryError as exc:
            rows.append({"recipe": recipe.name, "error": f"out of memory: {str(exc)[:80]}"})
        torch.cuda.empty_cache()
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder; default: a GPT-2-shaped model (4 layers, 256 wide) built here")
    p.add_argument("--data", help="corpus (.jsonl/.txt/folder); default: the shipped Bashkir sample, repeated")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--max-docs", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-7b", action="store_true", help="also compare recipes on a 7B-shaped model (GPU only)")
    p.add_argument("--gpu-steps", type=int, default=10)
    a = p.parse_args()

    texts = la.load_corpus(a.data)[: a.max_docs] if a.data else la.sample_corpus("ba") * 10
    model_path = a.model
    if model_path is None:
        model_path = la.save_tiny_checkpoint(tempfile.mkdtemp(), "gpt2", la.sample_corpus("ba"), vocab_size=2000,
                                             hidden_size=256, num_layers=4, num_heads=4, max_positions=512)
    from lowres_adapt.data import packing as _packing
    from lowres_adapt.modeling import loading as _loading

    source = _loading.resolve_model(str(model_path))
    base, _ = la.FullFineTuning().prepare(str(model_path))
    targets = la.find_target_modules(base)
    from lowres_adapt.recipes.lora import _targets_conv1d

    fan = _targets_conv1d(base, targets)
    del base
    ds, stats = _packing.pack_texts(source.tokenizer, texts, a.block_size, "texts", packing="concatenated")
    blocks = ds["input_ids"]
    need = a.steps * a.batch_size
    print(f"model {model_path}, {len(blocks)} blocks of {a.block_size} (need {need}), targets {targets}")

    lib, ref = [], []
    for i in range(a.rounds):  # alternate so slow drifts in machine load hit both sides alike
        t = time.perf_counter()
        ref.append(plain_trainer_peft(str(model_path), source.tokenizer, blocks, a, targets, fan))
        lib.append(library(str(model_path), texts, a))
        print(f"round {i + 1}: plain Trainer+PEFT {ref[-1]:.0f} tok/s, recipe.train {lib[-1]:.0f} tok/s "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    ratio = statistics.median(lib) / statistics.median(ref)
    print(f"\nmedian tokens/s: recipe.train {statistics.median(lib):.0f}, plain Trainer+PEFT "
          f"{statistics.median(ref):.0f}; ratio {ratio:.3f} (target >= 0.95)")
    print(f"per-round ratios: {[round(x / y, 3) for x, y in zip(lib, ref, strict=True)]}")
    if a.gpu_7b:
        gpu_7b(a.gpu_steps)


if __name__ == "__main__":
    main()

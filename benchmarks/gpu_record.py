"""The GPU record: the paper's setting (a 7B model, one GPU, bf16) measured once, end to end.

On one GPU (under 8 minutes on an H100) it writes ``benchmarks/results/gpu-<device>.json`` with:

- ``recipes``: QLoRA, LoRA and full fine-tuning with 8-bit Adam on a Mistral-7B-shaped model built from
  its config (hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocabulary 32000; random
  weights, which is all speed and memory depend on), through ``recipe.train`` in bf16: tokens/s and the
  step's ``torch.cuda.max_memory_allocated`` next to ``la.plan_memory``'s figure (``measured_over_planned``);
- ``evaluator``: ``la.PerplexityEvaluator``'s tokens/s against a raw batched forward over the same tokens
  (``evaluator_over_raw``);
- ``wrapping``: a one-process FSDP run and a DeepSpeed ZeRO-3 run through ``recipe.train`` (a local
  rendezvous, world size 1), so the wrapping path has run once; ZeRO-3 is skipped, with the reason
  recorded, when ``deepspeed`` is not installed.

``--tiny`` runs the same code paths on a tiny Llama config in fp32 on CPU in seconds (plain AdamW and
fp32 there; the FSDP call runs, but accelerate runs it unwrapped on CPU, recorded as ``"not_wrapped"``
with its ``distributed_type``). The test suite runs it (tests/test_gpu_record.py). Each wrapping
entry's ``status``: ``"wrapped"`` (accelerate ran FSDP / DeepSpeed), ``"not_wrapped"``, ``"failed"``
(with the error) or ``"skipped"`` (with the reason).

Commands:

    # the record, on one GPU (writes benchmarks/results/gpu-<device>.json)
    python benchmarks/gpu_record.py

    # tiny CPU mode (seconds; what tests/test_gpu_record.py runs)
    python benchmarks/gpu_record.py --tiny --out /tmp/gpu-record-tiny.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import lowres_adapt as la

RESULTS = Path(__file__).resolve().parent / "results"

# Mistral-7B v0.1's shape (its config.json), random weights
MISTRAL_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                  rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False)
TINY_LLAMA = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=False)
# the FSDP / ZeRO-3 runs only have to exercise the wrapping: a small Llama on GPU too
WRAP_LLAMA = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
                  num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
                  tie_word_embeddings=False)


def _settings(tiny: bool) -> dict[str, Any]:
    if tiny:
        return {"device": "cpu", "dtype": "float32", "steps": 2, "batch_size": 2, "block_size": 64,
                "full_optimizer": "adamw_torch", "eval_batch_size": 2, "eval_max_length": 64, "eval_docs": 4}
    return {"device": "cuda", "dtype": "bfloat16", "steps": 10, "batch_size": 4, "block_size": 512,
            "full_optimizer": "adamw_8bit", "eval_batch_size": 8, "eval_max_length": 1024, "eval_docs": 16}


def build_checkpoint(path: Path, shape: dict[str, Any], tokenizer, *, dtype: str, device: str,
                     arch: str = "mistral") -> Path:
    """Saves a randomly initialised model of ``shape`` and ``tokenizer`` to ``path`` (built on ``device``)."""
    import torch
    import transformers

    cls = transformers.MistralConfig if arch == "mistral" else transformers.LlamaConfig
    shape = {**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))}
    config = cls(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    _free(device)
    return path


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def record_recipes(path: Path, docs: list[str], s: dict[str, Any], work: Path) -> dict[str, Any]:
    """QLoRA, LoRA and full fine-tuning (8-bit Adam on GPU) through recipe.train, each against its plan."""
    from lowres_adapt.planning import plan_for_run

    out: dict[str, Any] = {}
    cases = [("qlora", la.QLoRA(r=16), {}), ("lora", la.LoRA(r=16), {}),
             ("full_8bit_adam", la.FullFineTuning(), {"optim": s["full_optimizer"], "gradient_checkpointing": True})]
    for name, recipe, extra in cases:
        _free(s["device"])
        t0 = time.perf_counter()
        # concatenated blocks: whether a measured batch holds a document boundary (and so a block-diagonal
        # mask) would depend on the data; the plan of isolated packing assumes one, the worst case
        run = recipe.train(str(path), docs, output_dir=work / name, max_steps=s["steps"], batch_size=s["batch_size"],
                           block_size=s["block_size"], dtype=s["dtype"], logging_steps=1, packing="concatenated",
                           **extra)
        m = run.metrics
        plan = plan_for_run(str(path), recipe, m)
        out[name] = {
            "recipe": recipe.to_dict(), "optimizer": m.get("optimizer"), "dtype": m.get("dtype"),
            "tokens_per_second": m.get("tokens_per_second"), "train_loss": m.get("train_loss"),
            "trainable_params": m.get("trainable_params"), "total_params": m.get("total_params"),
            "measured_peak_bytes": m.get("step_peak_memory_bytes"), "measured_kind": m.get("step_peak_memory_kind"),
            "planned_peak_bytes": plan.total, "plan_terms": plan.terms,
            "measured_over_planned": _ratio(m.get("step_peak_memory_bytes"), plan.total),
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }
        print(f"{name}: {out[name]['tokens_per_second']} tokens/s, peak {out[name]['measured_peak_bytes']} "
              f"vs plan {plan.total} (x{out[name]['measured_over_planned']})", flush=True)
        del run
    return out


def record_evaluator(path: Path, docs: list[str], s: dict[str, Any]) -> dict[str, Any]:
    """The evaluator's tokens/s against a raw batched forward over the same number of tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _free(s["device"])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, s["dtype"])).to(s["device"]).eval()
    tok = AutoTokenizer.from_pretrained(path)
    texts = docs[: s["eval_docs"]]
    ev = la.PerplexityEvaluator(max_length=s["eval_max_length"], batch_size=s["eval_batch_size"],
                                bootstrap_samples=0)
    ev.evaluate(model, tok, texts[:1])  # warm-up (kernels, allocator)
    _sync(s["device"])
    t0 = time.perf_counter()
    res = ev.evaluate(model, tok, texts)
    _sync(s["device"])
    ev_seconds = time.perf_counter() - t0
    n_tokens = res.n_tokens

    width, batch = s["eval_max_length"], s["eval_batch_size"]
    n_windows = max(1, math.ceil(n_tokens / width))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tok), (n_windows, width), generator=gen)
    with torch.no_grad():
        model(input_ids=ids[:1].to(s["device"]))
        _sync(s["device"])
        t0 = time.perf_counter()
        for i in range(0, n_windows, batch):
            logits = model(input_ids=ids[i:i + batch].to(s["device"])).logits
            torch.log_softmax(logits.float(), -1)
        _sync(s["device"])
    raw_seconds = time.perf_counter() - t0
    ev_tps, raw_tps = n_tokens / ev_seconds, n_windows * width / raw_seconds
    out = {"n_tokens": n_tokens, "bits_per_byte": res.bits_per_byte, "evaluator_tokens_per_second": ev_tps,
           "raw_forward_tokens_per_second": raw_tps, "evaluator_over_raw": ev_tps / raw_tps,
           "max_length": width, "batch_size": batch}
    print(f"evaluator: {ev_tps:.0f} tokens/s vs raw forward {raw_tps:.0f} (x{ev_tps / raw_tps:.2f})", flush=True)
    del model
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _single_process_env() -> dict[str, str]:
    """A local rendezvous for a world of one process, as torchrun would set it."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0", "LOCAL_RANK": "0",
            "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}


def record_wrapping(path: Path, docs: list[str], s: dict[str, Any], work: Path) -> dict[str, Any]:
    """One-process FSDP and ZeRO-3 through recipe.train: that the wrapping path runs, and what it records."""
    import importlib.util

    out: dict[str, Any] = {}
    cases = {
        "fsdp": (la.LoRA(r=8), {"fsdp": "full_shard auto_wrap",
                                "fsdp_config": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
                                                "use_orig_params": True}}),
        "zero3": (la.FullFineTuning(), {"deepspeed": {
            "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
            "bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}}),
    }
    for name, (recipe, extra) in cases.items():
        if name == "zero3" and importlib.util.find_spec("deepspeed") is None:
            out[name] = {"status": "skipped", "reason": "deepspeed is not installed (pip install deepspeed)"}
            continue
        if name == "zero3" and s["device"] == "cpu":
            out[name] = {"status": "skipped", "reason": "DeepSpeed ZeRO-3 needs a GPU (its CPU accelerator is not set up)"}
            continue
        # accelerate also sets OMP/MKL_NUM_THREADS for a CPU world: restored with the rest
        saved = {k: os.environ.get(k) for k in [*_single_process_env(), "OMP_NUM_THREADS", "MKL_NUM_THREADS"]}
        os.environ.update(_single_process_env())
        _free(s["device"])
        try:
            t0 = time.perf_counter()
            seen = _WrapperSeen()
            run = recipe.train(str(path), docs, output_dir=work / name, max_steps=s["steps"],
                               batch_size=s["batch_size"], block_size=min(s["block_size"], 256),
                               dtype=s["dtype"], logging_steps=1, callbacks=[seen], **extra)
            m = run.metrics
            expected = "FSDP" if name == "fsdp" else "DEEPSPEED"
            wrapped = expected in (seen.distributed_type or "")
            out[name] = {"status": "wrapped" if wrapped else "not_wrapped",
                         "note": "" if wrapped else f"accelerate ran it as {seen.distributed_type}: {name} wraps on "
                                                    "GPUs only, so this ran the same recipe.train call unwrapped",
                         "recipe": recipe.to_dict(), "train_loss": m.get("train_loss"),
                         "tokens_per_second": m.get("tokens_per_second"), "world_size": m.get("world_size"),
                         "measured_peak_bytes": m.get("step_peak_memory_bytes"),
                         "distributed_type": seen.distributed_type, "wrappers": sorted(seen.wrappers),
                         "wall_seconds": round(time.perf_counter() - t0, 2)}
            del run
        except Exception as exc:  # recorded, not raised: the record says which path failed and how
            out[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                         "traceback": traceback.format_exc()[-4000:]}
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            _teardown_process_group()
        print(f"{name}: {out[name]['status']}", flush=True)
    return out


class _WrapperSeen:
    """A Trainer callback noting, at the first optimizer step, how accelerate runs (``distributed_type``)
    and which wrapper classes hold the trained model (FSDP units, a DeepSpeed engine)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class Seen(TrainerCallback):
            distributed_type: str | None = None
            wrappers: set[str] = set()

            def on_step_end(self, args, state, control, model=None, **kwargs):
                if self.distributed_type is None:
                    from accelerate.state import AcceleratorState

                    self.distributed_type = str(AcceleratorState().distributed_type)
                    names = {type(m).__name__ for m in (model.modules() if model is not None else [])}
                    self.wrappers = {n for n in names if "FullyShard" in n or "FSDP" in n or "DeepSpeed" in n}

        return Seen()


def _teardown_process_group() -> None:
    """Ends the one-process world and forgets accelerate's state of it, so later runs in this process
    (the next record, other tests) start as a plain single process again."""
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, GradientState

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    # accelerate keeps its state in class-level singletons; its own test utilities reset them this way
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def device_name(tiny: bool) -> str:
    import torch

    if not tiny and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    import transformers

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny Llama, fp32, CPU, a few steps (the test suite's mode)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/gpu-<device>.json)")
    p.add_argument("--work", type=Path, default=None, help="folder for checkpoints and runs (default: a temp dir)")
    args = p.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("gpu_record.py needs a CUDA GPU; run with --tiny for the CPU mode")
    s = _settings(args.tiny)
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-record-"))
    docs = la.sample_corpus("ba") * (1 if args.tiny else 20)
    tokenizer = la.train_tokenizer(la.sample_corpus("ba"), vocab_size=300 if args.tiny else 2000, kind="llama_bpe",
                                   model_max_length=4096)
    tokenizer.pad_token = tokenizer.eos_token
    shape = TINY_LLAMA if args.tiny else MISTRAL_7B
    t0 = time.perf_counter()
    main_path = build_checkpoint(work / "model", shape, tokenizer, dtype=s["dtype"], device=s["device"],
                                 arch="llama" if args.tiny else "mistral")
    build_seconds = time.perf_counter() - t0
    wrap_path = main_path if args.tiny else build_checkpoint(work / "wrap-model", WRAP_LLAMA, tokenizer,
                                                            dtype=s["dtype"], device=s["device"], arch="llama")
    name = device_name(args.tiny)
    record: dict[str, Any] = {
        "device": name, "mode": "tiny-cpu" if args.tiny else "gpu",
        "model_shape": {"arch": "llama" if args.tiny else "mistral", **shape},
        "settings": s, "checkpoint_build_seconds": round(build_seconds, 2),
        "library_versions": {"lowres_adapt": la.__version__, "torch": torch.__version__,
                             "transformers": transformers.__version__, "python": platform.python_version()},
        "command": "python benchmarks/gpu_record.py" + (" --tiny" if args.tiny else ""),
    }
    record["recipes"] = record_recipes(main_path, docs, s, work)
    record["evaluator"] = record_evaluator(main_path, docs, s)
    record["wrapping"] = record_wrapping(wrap_path, docs, s, work)
    record["wall_seconds"] = round(time.perf_counter() - started, 2)
    out = args.out or RESULTS / f"gpu-{slug(name)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out} ({record['wall_seconds']} s)")
    return record


if __name__ == "__main__":
    main()

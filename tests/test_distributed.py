"""Distributed: ``recipe.train`` runs unchanged under ``torchrun`` (2 CPU processes, DDP over gloo).

The worker below is the same call a single-process user makes; torchrun sets RANK/WORLD_SIZE and
transformers' Trainer (through accelerate) wraps the model in DDP. Both ranks must finish, see a world
of 2, and end with identical weights (DDP averages gradients, so replicas never drift apart).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    import lowres_adapt as la

    model_path, out, result_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    docs = la.sample_corpus("ba")[:12]
    run = la.LoRA(r=4).train(model_path, docs, docs[-2:], output_dir=out, max_steps=3, block_size=32,
                             batch_size=2, learning_rate=1e-2, logging_steps=1)
    lora = {n: p.detach() for n, p in run.model.named_parameters() if "lora_" in n}
    rank = int(os.environ["RANK"])
    with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world_size": run.metrics["world_size"], "global_step": run.metrics["global_step"],
                   "train_tokens": run.metrics["train_tokens"], "eval_loss": run.metrics["eval_loss"],
                   "lora_sum": float(sum(p.double().sum() for p in lora.values())),
                   "lora_abs": float(sum(p.double().abs().sum() for p in lora.values())),
                   "weights": {n: p.flatten()[:8].tolist() for n, p in lora.items()}}, f)
""")


@pytest.mark.slow
def test_two_cpu_processes_ddp_gloo(tiny_gpt2_path, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(worker), str(tiny_gpt2_path), str(tmp_path / "run"), str(results)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["world_size"] == 2 and r["global_step"] == 3
        assert r["lora_abs"] > 0  # the B matrices moved away from their zero init
    # both replicas hold the same weights and report the same evaluation
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["lora_sum"] == ranks[1]["lora_sum"]
    assert ranks[0]["eval_loss"] == pytest.approx(ranks[1]["eval_loss"], rel=1e-6)
    # each step saw batch_size x 2 processes blocks; rank 0 alone wrote the outputs
    assert ranks[0]["train_tokens"] == 3 * 2 * 2 * 32
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "adapter_config.json").is_file()

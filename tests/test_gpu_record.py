"""benchmarks/gpu_record.py in its tiny CPU mode: the same code paths as the GPU record (recipe.train for
QLoRA, LoRA and full fine-tuning against the plan, the evaluator against a raw forward, the FSDP / ZeRO-3
wrapping runs or their recorded skip), so the record is ready to run when a GPU is lent."""

from __future__ import annotations

import json
import math


def test_tiny_record_writes_every_section(tmp_path):
    import gpu_record  # benchmarks/ is on sys.path (tests/conftest.py)

    out = tmp_path / "gpu-cpu.json"
    returned = gpu_record.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "work")])
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["mode"] == "tiny-cpu" and record["device"] == "cpu"
    assert record["command"] == "python benchmarks/gpu_record.py --tiny"
    assert set(record) >= {"model_shape", "settings", "library_versions", "recipes", "evaluator", "wrapping",
                           "wall_seconds"}
    assert set(record["recipes"]) == {"qlora", "lora", "full_8bit_adam"}
    for name, row in record["recipes"].items():
        assert row["tokens_per_second"] > 0 and math.isfinite(row["train_loss"]), name
        assert row["measured_kind"] == "cpu_tensor_profiler"
        ratio = row["measured_over_planned"]
        assert math.isfinite(ratio) and abs(ratio - 1) < 0.03, (name, ratio)  # the planner's CPU tolerance
        assert 0 < row["trainable_params"] <= row["total_params"]
    assert record["recipes"]["qlora"]["trainable_params"] == record["recipes"]["lora"]["trainable_params"]
    ev = record["evaluator"]
    assert ev["n_tokens"] > 0 and math.isfinite(ev["bits_per_byte"])
    assert math.isfinite(ev["evaluator_over_raw"]) and ev["evaluator_over_raw"] > 0
    assert ev["evaluator_over_raw"] == ev["evaluator_tokens_per_second"] / ev["raw_forward_tokens_per_second"]
    fsdp = record["wrapping"]["fsdp"]  # the call ran through recipe.train; on CPU accelerate does not wrap
    assert fsdp["status"] == "not_wrapped" and fsdp["distributed_type"] and math.isfinite(fsdp["train_loss"])
    zero3 = record["wrapping"]["zero3"]
    assert zero3["status"] == "skipped" and "deepspeed" in zero3["reason"].lower(), zero3
    assert returned["recipes"].keys() == record["recipes"].keys()
    # the one-process world is gone: a later recipe.train in this process runs as a plain single process
    import torch.distributed as dist
    from accelerate.state import PartialState

    assert not (dist.is_available() and dist.is_initialized())
    assert str(PartialState().distributed_type) == "DistributedType.NO"


def test_device_file_name():
    import gpu_record

    assert gpu_record.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"

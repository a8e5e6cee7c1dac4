"""The study at scale, measured: data preparation against corpus size (list path vs streamed path), a tiny
grid run serially / with a 2-worker process pool / with a 2-worker dask LocalCluster, and the
tokenization a cached grid saves per cell.

Corpora of the requested sizes are synthesized in /tmp (never in the repository) by repeating the Bashkir
train documents, each copy with a counter so every document is distinct. Each preparation runs in a fresh
subprocess; peak RSS is the largest sum over its process tree (sampled every 50 ms), and peak anonymous
memory the same sum less file-backed pages (the memory-mapped Arrow files, which the kernel can drop).

Commands (from the repository root; the machine is shared, so nice it)::

    # everything (about 25 minutes on a busy 2-core CPU), results in benchmarks/results/study_scale_cpu.json
    nice -n 10 python benchmarks/bench_study_scale.py --data ../shared/data/bashkir --sizes 20,100,500 \\
        --list-sizes 20,100 --out benchmarks/results/study_scale_cpu.json

    # a quick look
    python benchmarks/bench_study_scale.py --data ../shared/data/bashkir --sizes 20 --list-sizes 20 --no-grid
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREP = r"""
import json, sys, time
import lowres_adapt as la
from transformers import AutoTokenizer
path, mode, cache = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None)
tok = AutoTokenizer.from_pretrained(la.sample_model_path("mini-gpt2-ru"))
t0 = time.perf_counter()
if mode == "list":
    docs = la.load_corpus(path)
    ds, stats = la.data.pack_texts(tok, docs, 256, "train_texts")
else:
    ds, stats = la.data.pack_corpus(tok, path, 256, cache_dir=cache, num_proc=int(mode.split(":")[1]) or None)
print(json.dumps({"seconds": time.perf_counter() - t0, "n_blocks": len(ds), "n_tokens": stats["n_tokens"],
                  "from_cache": stats.get("tokenized_from_cache", False), "first": ds[0]["input_ids"][:8],
                  "last": ds[len(ds) - 1]["input_ids"][-8:]}))
"""


def synthesize(train: Path, mb: int, folder: Path) -> Path:
    """A JSONL corpus of about ``mb`` MB: the train documents repeated, each copy tagged with a counter."""
    out = folder / f"corpus-{mb}mb.jsonl"
    if out.exists() and out.stat().st_size >= mb * 1e6:
        return out
    docs = [json.loads(line)["text"] for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    written, copy = 0, 0
    with open(out, "w", encoding="utf-8") as fh:
        while written < mb * 1e6:
            for d in docs:
                line = json.dumps({"text": f"{d} [{copy}]"}, ensure_ascii=False) + "\n"
                fh.write(line)
                written += len(line.encode())
            copy += 1
    return out


def measure(args: list[str]) -> dict:
    """Runs a subprocess; returns its JSON line with ``peak_rss_bytes`` (process tree, sampled) added."""
    import psutil

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", PREP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = peak_anon = 0
    while proc.poll() is None:
        try:
            infos = [ps.memory_info()] + [c.memory_info() for c in ps.children(recursive=True)]
            peak = max(peak, sum(i.rss for i in infos))
            # resident minus file-backed pages (memory-mapped Arrow files the kernel can drop): the heap
            peak_anon = max(peak_anon, sum(i.rss - i.shared for i in infos))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {err[-2000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_bytes": peak, "peak_anon_bytes": peak_anon}


def data_preparation(train: Path, sizes: list[int], list_sizes: list[int], folder: Path, num_proc: int) -> list[dict]:
    rows = []
    for mb in sizes:
        path = synthesize(train, mb, folder)
        real_mb = path.stat().st_size / 1e6
        row = {"corpus_mb": round(real_mb, 1)}
        if mb in list_sizes:
            row["list"] = measure([str(path), "list"])
            print(f"{mb} MB list: {row['list']['seconds']:.1f} s, {row['list']['peak_rss_bytes'] / 2**30:.2f} GiB "
                  f"(anonymous {row['list']['peak_anon_bytes'] / 2**30:.2f})", flush=True)
        row["streamed"] = measure([str(path), "stream:1", "-"])  # no cache: the same work as the list path
        print(f"{mb} MB streamed: {row['streamed']['seconds']:.1f} s, "
              f"{row['streamed']['peak_rss_bytes'] / 2**30:.2f} GiB "
              f"(anonymous {row['streamed']['peak_anon_bytes'] / 2**30:.2f})", flush=True)
        if num_proc > 1:
            row[f"streamed_num_proc_{num_proc}"] = measure([str(path), f"stream:{num_proc}", "-"])
        if mb == sizes[0]:  # a grid's first cell builds the cache, the later cells read it back
            cache = tempfile.mkdtemp(dir=folder)
            row["cache_build"] = measure([str(path), "stream:1", cache])
            row["cached_read"] = measure([str(path), "stream:1", cache])
            assert row["cached_read"]["from_cache"] and not row["cache_build"]["from_cache"]
            row["cache_saves_seconds_per_cell"] = row["cache_build"]["seconds"] - row["cached_read"]["seconds"]
        if "list" in row:
            same = all(row["list"][k] == row["streamed"][k] for k in ("n_blocks", "n_tokens", "first", "last"))
            row["same_blocks"] = same
            row["throughput_ratio_streamed_over_list"] = row["list"]["seconds"] / row["streamed"]["seconds"]
        for k in [k for k in row if isinstance(row[k], dict)]:
            row[k]["mb_per_second"] = real_mb / row[k]["seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


GRID = r"""
import json, sys, time
import lowres_adapt as la
from lowres_adapt.study import make_executor
kind, out = sys.argv[1], sys.argv[2]
cfg = {"models": ["tiny:gpt2", "tiny:llama"], "recipes": ["full", "lora-r4"], "seeds": [0], "corpus": "sample:ba",
       "output_dir": out, "valid": 0.1, "test": 0.1, "max_steps": 20, "block_size": 64, "batch_size": 4,
       "learning_rate": 1e-3, "evaluate_base": False, "num_prompts": 2, "evaluation": {"bootstrap_samples": 50},
       "generation": {"max_new_tokens": 8}, "drift_backend": "ngram", "progress": False}
t0 = time.perf_counter()
with make_executor(kind, workers=2) as ex:
    res = la.Study(**cfg).run(executor=None if kind == "local" else ex)
print(json.dumps({"seconds": time.perf_counter() - t0, "numbers": {r["run_id"]: [r["status"], r["train"].get("train_loss"),
      r["test"].get("bits_per_byte")] for r in res.runs}, "from_cache": {r["run_id"]: r["train"].get("tokenized_from_cache")
      for r in res.runs}}))
"""


def grid(folder: Path) -> dict:
    out = {}
    for kind in ("local", "processes", "dask"):
        target = Path(tempfile.mkdtemp(dir=folder)) / "study"
        proc = subprocess.run([sys.executable, "-c", GRID, kind, str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"grid {kind}: {out[kind]['seconds']:.1f} s", flush=True)
    out["numbers_equal"] = out["local"]["numbers"] == out["processes"]["numbers"] == out["dask"]["numbers"]
    out["speedup_processes"] = out["local"]["seconds"] / out["processes"]["seconds"]
    out["speedup_dask"] = out["local"]["seconds"] / out["dask"]["seconds"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the Bashkir data folder (corpus-train.jsonl)")
    p.add_argument("--sizes", default="20,100,500", help="corpus sizes in MB, streamed path")
    p.add_argument("--list-sizes", default="20,100", help="sizes also run through the list path (memory grows!)")
    p.add_argument("--num-proc", type=int, default=0, help="also time the streamed path with this many processes")
    p.add_argument("--no-grid", action="store_true")
    p.add_argument("--work", default="/tmp/lowres-adapt-bench-scale", help="where corpora and caches go")
    p.add_argument("--out", default="benchmarks/results/study_scale_cpu.json")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    list_sizes = [int(x) for x in a.list_sizes.split(",") if x]
    result = {"command": " ".join(sys.argv), "cpu_count": os.cpu_count(),
              "data_preparation": data_preparation(Path(a.data) / "corpus-train.jsonl", sizes, list_sizes, work,
                                                   a.num_proc)}
    if not a.no_grid:
        result["grid"] = grid(work)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

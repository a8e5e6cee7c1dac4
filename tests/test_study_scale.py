"""The study at scale: cells through executors (serial = process pool = dask, numbers equal), a killed
worker recovered, two run()s racing on one folder, stale locks, GPU slots, the grid's memory plan, the
blocks cache (a killed writer's entry rebuilt) and streamed corpora (same blocks as the list path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

import lowres_adapt as la
from lowres_adapt.study import Study

DOCS = [f"документ {i} һүҙ ҡала ғаилә {'әсә ' * (i % 5)}бала." for i in range(40)]
SRC = str(Path(la.__file__).resolve().parents[1])


class FastStudy(Study):
    """Every expensive step a deterministic fake; ``_train`` appends to ``calls_file`` and can kill its
    worker (``os._exit``) while ``kill_marker`` does not exist yet (then creates it)."""

    def __init__(self, *a, calls_file=None, kill_run=None, kill_marker=None, sleep=0.0, **k):
        super().__init__(*a, progress=False, **k)
        self.calls_file, self.kill_run, self.kill_marker, self.sleep = calls_file, kill_run, kill_marker, sleep

    def _train(self, spec, model_path, data, output_dir):
        if self.calls_file:
            with open(self.calls_file, "a", encoding="utf-8") as fh:
                fh.write(f"{spec.run_id} {os.getpid()}\n")
        if spec.run_id == self.kill_run and not Path(self.kill_marker).exists():
            Path(self.kill_marker).touch()
            os._exit(17)  # the worker dies mid-cell: no error.json, no metrics.json
        time.sleep(self.sleep)
        return SimpleNamespace(model=SimpleNamespace(run=spec.run_id, seed=spec.seed), tokenizer=None,
                               metrics={"train_loss": 2.0 + spec.seed + len(spec.recipe_label), "wall_seconds": 0.1})

    def _load_model(self, model_path):
        return SimpleNamespace(run="base", seed=0, parameters=lambda: []), None

    def _evaluate(self, model, tokenizer, texts):
        bpb = 1.0 + 0.01 * len(model.run) + 0.1 * model.seed
        return {"bits_per_byte": bpb, "token_perplexity": 2 ** bpb, "per_document": []}

    def _generate(self, model, tokenizer, prompts, seed):
        return [f"{p} {seed}" for p in prompts]

    def _drift(self, texts):
        return {"drift_rate": 0.0, "n_texts": len(texts)}, [{}] * len(texts)

    def _diagnose(self, model_path, data):
        return {"fertility": 2.0, "warnings": []}, "tok"


def fast(tmp_path, name="study", **k):
    k.setdefault("models", ["m-a", "m-b"])
    k.setdefault("recipes", ["full", "lora"])
    k.setdefault("seeds", [0, 1])
    return FastStudy(corpus=DOCS, output_dir=tmp_path / name, valid=0.1, test=0.1, **k)


def numbers(results) -> dict:
    return {r["run_id"]: (r["status"], r["train"]["train_loss"], r["test"]["bits_per_byte"]) for r in results.runs}


# --------------------------------------------------------------------------------------------- executors
def test_a_process_pool_runs_each_cell_once_in_its_workers(tmp_path):
    calls = tmp_path / "calls.txt"
    serial = fast(tmp_path, "serial").run()
    with ProcessPoolExecutor(2) as pool:
        pooled = fast(tmp_path, "pool", calls_file=str(calls)).run(executor=pool)
    assert numbers(pooled) == numbers(serial) and len(pooled.runs) == 8
    lines = calls.read_text().split()
    run_ids, pids = lines[0::2], {int(p) for p in lines[1::2]}
    assert sorted(run_ids) == sorted(serial.study["run_ids"])  # each cell exactly once
    assert os.getpid() not in pids  # in the workers, not the parent
    assert (tmp_path / "pool" / "runs" / "m-a__lora-r8__s1" / "metrics.json").is_file()
    assert not list((tmp_path / "pool" / "locks").iterdir())  # every lock released


class FutureWithoutAsCompleted:
    """A future as minimal as the issue's contract: done() and result() only."""

    def __init__(self, value):
        self._value, self._polls = value, 0

    def done(self):
        self._polls += 1
        return self._polls > 2  # not done at once: the parent must poll

    def result(self):
        return self._value


class MinimalExecutor:
    def __init__(self):
        self.submitted = 0

    def submit(self, fn, *args):
        self.submitted += 1
        return FutureWithoutAsCompleted(fn(*args))


def test_any_object_with_submit_is_an_executor_and_finished_cells_are_not_submitted(tmp_path):
    ex = MinimalExecutor()
    first = fast(tmp_path).run(executor=ex)
    assert ex.submitted == 8 and {r["status"] for r in first.runs} == {"ok"}
    again = MinimalExecutor()
    second = fast(tmp_path).run(executor=again)
    assert again.submitted == 0 and numbers(second) == numbers(first)


def test_a_killed_worker_is_recorded_failed_then_recovered_by_the_next_run(tmp_path):
    marker, calls = tmp_path / "killed-once", tmp_path / "calls.txt"
    study = fast(tmp_path, calls_file=str(calls), kill_run="m-a__lora-r8__s0", kill_marker=str(marker))
    with ProcessPoolExecutor(2) as pool:
        first = study.run(executor=pool)
    lost = {r["run_id"]: r for r in first.runs}["m-a__lora-r8__s0"]
    assert marker.exists() and lost["status"] == "failed" and "worker lost" in lost["error"]
    assert (tmp_path / "study" / "runs" / "m-a__lora-r8__s0" / "error.json").is_file()
    ok_before = {r["run_id"] for r in first.runs if r["status"] == "ok"}
    n_calls = len(calls.read_text().splitlines())
    with ProcessPoolExecutor(2) as pool:
        second = study.run(executor=pool)
    assert {r["status"] for r in second.runs} == {"ok"}
    redone = calls.read_text().splitlines()[n_calls:]
    assert "m-a__lora-r8__s0" in {line.split()[0] for line in redone}
    assert not ok_before & {line.split()[0] for line in redone}  # nothing finished is done again
    assert numbers(second) == numbers(fast(tmp_path, "serial").run())


RACE = textwrap.dedent("""
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_study_scale import fast
    with ProcessPoolExecutor(2) as pool:
        res = fast(Path({tmp!r}), calls_file={calls!r}, sleep=0.3).run(executor=pool)
    print(sorted(r["status"] for r in res.runs))
""")


def test_two_runs_racing_on_one_folder_do_each_cell_once(tmp_path):
    calls = tmp_path / "calls.txt"
    fast(tmp_path)  # the folder does not exist yet: both processes start from nothing
    script = RACE.format(tests=str(Path(__file__).parent), tmp=str(tmp_path), calls=str(calls))
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert out.strip().endswith(str(["ok"] * 8)), out
    run_ids = [line.split()[0] for line in calls.read_text().splitlines()]
    assert sorted(run_ids) == sorted(set(run_ids)) and len(run_ids) == 8  # no cell done twice


def test_a_stale_lock_of_a_dead_pid_is_taken_over_and_a_live_one_is_not(tmp_path):
    import socket

    from lowres_adapt.study._executor import CellLock, lock_is_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    assert lock_is_stale(path)
    lock = CellLock(path)
    assert lock.acquire() and json.loads(path.read_text())["pid"] == os.getpid()
    assert not lock_is_stale(path) and not CellLock(path).acquire()  # held by a live process (us)
    lock.release()
    assert not path.exists()
    path.write_text(json.dumps({"host": "another-node", "pid": 1}))  # another host: its heartbeat decides
    assert not lock_is_stale(path)
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert lock_is_stale(path)


def _visible_gpus(_):
    time.sleep(0.05)  # long enough that both workers take work
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpu_slots_of_a_local_pool():
    from lowres_adapt.study import make_executor

    with make_executor("processes", workers=2, gpus_per_cell=2) as pool:
        seen = sorted({f.result() for f in [pool.submit(_visible_gpus, i) for i in range(12)]})
    assert seen == ["0,1", "2,3"]  # worker k sees GPUs 2k, 2k+1 and nothing else
    with pytest.raises(la.errors.StudyConfigError, match="did you mean 'dask'"):
        with make_executor("dusk"):
            pass


# --------------------------------------------------------------------------------------------- real cells
def _tiny(folder: Path) -> dict:
    return {"models": ["tiny:gpt2"], "recipes": ["full", "lora-r4"], "seeds": [0], "corpus": "sample:ba",
            "output_dir": str(folder), "valid": 0.1, "test": 0.1, "max_steps": 3, "block_size": 32,
            "batch_size": 2, "learning_rate": 1e-3, "evaluate_base": False, "num_prompts": 2,
            "evaluation": {"bootstrap_samples": 10}, "generation": {"max_new_tokens": 4},
            "drift_backend": "ngram", "progress": False}


def _real_numbers(results) -> dict:
    return {r["run_id"]: (r["status"], r["train"]["train_loss"], r["train"]["final_train_loss"],
                          r["test"]["bits_per_byte"], r["test"]["token_perplexity"]) for r in results.runs}


def test_serial_process_pool_and_dask_give_equal_numbers(tmp_path):
    pytest.importorskip("distributed")
    from lowres_adapt.cli import main
    from lowres_adapt.study import make_executor

    serial = Study(**_tiny(tmp_path / "serial")).run()
    config = tmp_path / "pool.json"  # the pool through the command line
    config.write_text(json.dumps({k: v for k, v in _tiny(tmp_path / "pool").items() if k != "progress"}))
    assert main(["study", str(config), "--executor", "processes", "--workers", "2", "-q"]) == 0
    pooled = la.StudyResults.load(tmp_path / "pool")
    with make_executor("dask", workers=2) as client:
        dasked = Study(**_tiny(tmp_path / "dask")).run(executor=client)
    assert {r["status"] for r in serial.runs} == {"ok"}, [r.get("error") for r in serial.runs]
    assert _real_numbers(pooled) == _real_numbers(serial)
    assert _real_numbers(dasked) == _real_numbers(serial)


# --------------------------------------------------------------------------------------------- the plan
def test_plan_table_rows_equal_plan_memory_and_a_misfit_is_refused_before_anything(tmp_path, capsys):
    from lowres_adapt.cli import main
    from lowres_adapt.errors import StudyConfigError

    study = Study(models=["tiny:gpt2", "tiny:llama"], recipes=["full", "lora"], seeds=[0, 1], corpus=DOCS,
                  output_dir=tmp_path / "s", batch_size=4, block_size=64, progress=False)
    rows = study.plan_memory("1GiB")
    assert [r["run_id"] for r in rows] == study.plan() and all(r["fits"] for r in rows)
    config = la.build_tiny_model("llama", vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                                 max_positions=256).config
    direct = la.plan_memory(config, la.LoRA(r=8), batch_size=4, block_size=64, device_memory="1GiB")
    row = {r["run_id"]: r for r in rows}["tiny-llama__lora-r8__s1"]
    assert row["planned_peak_bytes"] == direct.total and row["largest_batch_size"] == direct.largest_batch_size
    full, lora = (r["planned_peak_bytes"] for r in rows[:3:2])
    assert full > lora  # full fine-tuning holds AdamW states for every weight
    tight = (full + lora) // 2 / 0.9  # usable memory between the two: full does not fit, LoRA does
    assert [r["fits"] for r in study.plan_memory(int(tight))][:4:2] == [False, True]
    with pytest.raises(StudyConfigError, match="tiny-gpt2__full__s0"):
        study.run(device_memory=int(tight))
    assert not (tmp_path / "s").exists()  # refused before any data was read or folder made

    cfg = tmp_path / "study.json"
    cfg.write_text(json.dumps({"models": ["tiny:gpt2"], "recipes": ["full", "lora"], "seeds": [0],
                               "corpus": DOCS, "output_dir": str(tmp_path / "cli"), "batch_size": 4,
                               "block_size": 64}))
    assert main(["study", str(cfg), "--plan", "--gpu-memory", "1GiB"]) == 0
    assert "| tiny-gpt2__lora-r8__s0 | tiny:gpt2 | lora-r8 | 0 | 4 |" in capsys.readouterr().out
    assert main(["study", str(cfg), "--gpu-memory", str(int(tight))]) == 4  # nothing submitted
    assert not (tmp_path / "cli").exists()


# --------------------------------------------------------------------------------------------- blocks cache
@pytest.fixture(scope="module")
def tok_and_docs():
    docs = la.sample_corpus("ba")
    return la.train_tokenizer(docs, vocab_size=300), docs


def test_the_cache_is_read_back_and_holds_pack_texts_blocks(tmp_path, tok_and_docs):
    tok, docs = tok_and_docs
    plain, plain_stats = la.data.pack_texts(tok, docs, 32, "train_texts")
    built, s1 = la.data.pack_corpus(tok, docs, 32, cache_dir=tmp_path)
    read, s2 = la.data.pack_corpus(tok, docs, 32, cache_dir=tmp_path)
    assert (s1["tokenized_from_cache"], s2["tokenized_from_cache"]) == (False, True)
    assert built["input_ids"] == read["input_ids"] == plain["input_ids"]
    assert s2["n_tokens"] == plain_stats["n_tokens"] and s2["packing_efficiency"] == plain_stats["packing_efficiency"]
    other = la.data.pack_corpus(tok, docs, 16, cache_dir=tmp_path)[1]  # another block size: another entry
    changed = la.data.pack_corpus(tok, docs[1:], 32, cache_dir=tmp_path)[1]  # other documents: another entry
    assert not other["tokenized_from_cache"] and not changed["tokenized_from_cache"]
    assert len({s1["cache_key"], other["cache_key"], changed["cache_key"]}) == 3


KILL_WRITER = textwrap.dedent("""
    import os, sys
    import lowres_adapt as la
    from datasets import Dataset
    real = Dataset.save_to_disk
    def dying(self, path, *a, **k):  # the writer dies with the Arrow files half written
        real(self, path, *a, **k)
        os._exit(9)
    Dataset.save_to_disk = dying
    docs = la.sample_corpus("ba")
    la.data.pack_corpus(la.train_tokenizer(docs, vocab_size=300), docs, 32, cache_dir=sys.argv[1])
""")


def test_an_entry_a_killed_writer_left_is_rebuilt_never_read(tmp_path, tok_and_docs):
    tok, docs = tok_and_docs
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", KILL_WRITER, str(cache)], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]
    partial = [p for p in cache.iterdir() if ".partial-" in p.name]
    assert partial and (partial[0] / "blocks").is_dir() and not (partial[0] / "complete.json").exists()
    # a torn entry in place (a marker of another key) is not read either
    _, good = la.data.pack_corpus(tok, docs, 32, cache_dir=tmp_path / "other")
    torn = cache / good["cache_key"]
    torn.mkdir()
    (torn / "complete.json").write_text(json.dumps({"key": "something-else"}))
    ds, stats = la.data.pack_corpus(tok, docs, 32, cache_dir=cache)
    assert not stats["tokenized_from_cache"] and ds["input_ids"] == la.data.pack_texts(tok, docs, 32, "x")[0]["input_ids"]
    assert not [p for p in cache.iterdir() if ".partial-" in p.name]  # the dead writer's files are gone
    assert la.data.pack_corpus(tok, docs, 32, cache_dir=cache)[1]["tokenized_from_cache"]


def test_a_streamed_source_gives_the_list_paths_blocks(tmp_path, tok_and_docs):
    tok, docs = tok_and_docs
    many = [f"{d} {i}" for i in range(3) for d in docs]  # more than one packing batch would need 10k docs:
    path = tmp_path / "corpus.jsonl"                      # the batch size is checked by the pack_documents calls
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in many), encoding="utf-8")
    listed, ls = la.data.pack_texts(tok, many, 32, "train_texts")
    streamed, ss = la.data.pack_corpus(tok, str(path), 32)
    assert streamed["input_ids"] == listed["input_ids"] and ss["n_tokens"] == ls["n_tokens"]
    two, _ = la.data.pack_corpus(tok, path, 32, num_proc=2, cache_dir=tmp_path / "c")
    assert two["input_ids"] == listed["input_ids"]


def test_recipe_train_takes_a_corpus_path_and_a_study_tokenizes_once(tmp_path, tok_and_docs):
    tok, docs = tok_and_docs
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(docs), encoding="utf-8")
    model = la.save_tiny_checkpoint(tmp_path / "m", "gpt2", docs, vocab_size=300, hidden_size=32, num_heads=2,
                                    max_positions=64)
    common = {"max_steps": 2, "block_size": 32, "batch_size": 2, "seed": 0}
    from_path = la.FullFineTuning().train(model, str(path), output_dir=tmp_path / "a", **common)
    from_list = la.FullFineTuning().train(model, docs, output_dir=tmp_path / "b", **common)
    assert from_path.metrics["train_loss"] == from_list.metrics["train_loss"]
    assert from_path.metrics["train_blocks"] == from_list.metrics["train_blocks"]

    results = Study(**_tiny(tmp_path / "study")).run()
    cached = {r["run_id"]: r["train"]["tokenized_from_cache"] for r in results.runs}
    assert cached == {"tiny-gpt2__full__s0": False, "tiny-gpt2__lora-r4__s0": True}  # one tokenizer: once
    assert all(r["train"]["data_seconds"] > 0 for r in results.runs)
    assert json.loads((tmp_path / "study" / "runs" / "tiny-gpt2__lora-r4__s0" / "metrics.json").read_text()
                      )["train"]["tokenized_from_cache"] is True


def test_a_streamed_split_assigns_as_split_documents_and_trains_on_the_same_blocks(tmp_path, tok_and_docs):
    tok, docs = tok_and_docs
    corpus = docs + docs[:3] + [f"{d} bis" for d in docs]  # duplicates land in one split, as in the list path
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in corpus), encoding="utf-8")
    for seed, valid, test in ((0, 0.1, 0.1), (3, 0.2, 0.05), (1, 0.0, 0.3)):
        listed = la.split_documents(corpus, valid=valid, test=test, seed=seed)
        streamed = la.data.split_source(path, valid=valid, test=test, seed=seed)
        assert {k: list(v) for k, v in streamed.items()} == listed
        assert {k: len(v) for k, v in streamed.items()} == {k: len(v) for k, v in listed.items()}
    streamed = la.data.split_source(path, valid=0.1, test=0.1)
    listed = la.split_documents(corpus, valid=0.1, test=0.1)
    blocks, _ = la.data.pack_corpus(tok, streamed["train"], 32, cache_dir=tmp_path / "cache")
    assert blocks["input_ids"] == la.data.pack_texts(tok, listed["train"], 32, "t")[0]["input_ids"]


def test_a_study_on_a_streamed_corpus_gives_the_list_studys_numbers(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\n".join(la.sample_corpus("ba")), encoding="utf-8")
    listed = Study(**{**_tiny(tmp_path / "list"), "corpus": str(path), "recipes": ["lora-r4"]}).run()
    streamed = Study(**{**_tiny(tmp_path / "stream"), "corpus": {"source": str(path), "stream": True},
                        "recipes": ["lora-r4"]}).run()
    assert _real_numbers(streamed) == _real_numbers(listed)
    assert streamed.study["split_fingerprint"] == listed.study["split_fingerprint"]


def test_streamed_packing_keeps_pack_texts_group_boundaries(tmp_path, tok_and_docs, monkeypatch):
    """pack_texts drops the remainder under one block per group of documents; the streamed packer, which
    reads a few documents at a time, must drop exactly the same tokens (small groups and chunks here)."""
    from lowres_adapt.data import blocks, packing

    tok, docs = tok_and_docs
    many = [f"{d} {i}" for i in range(2) for d in docs]
    monkeypatch.setattr(packing, "_PACK_BATCH_DOCS", 10)
    monkeypatch.setattr(blocks, "_PACK_BATCH_DOCS", 10)
    from datasets import Dataset

    listed, _ = la.data.pack_texts(tok, many, 32, "t", packing="concatenated")  # the streamed generator's packing
    ids = tok(many, add_special_tokens=False)["input_ids"]
    one_group, _ = la.pack_documents(ids, 32, tok.eos_token_id)
    assert len(one_group) > len(listed)  # the groups' remainders were dropped: the boundaries matter
    tokenized = Dataset.from_dict({"input_ids": ids})
    for chunk in (3, 10, 1000):
        rows = [r["input_ids"] for r in blocks._packed_blocks(tokenized, 32, tok.eos_token_id, chunk=chunk)]
        assert rows == listed["input_ids"], chunk


def test_submitit_runs_the_cells_as_jobs_with_the_gpu_request(tmp_path):
    """Without SLURM, submitit's AutoExecutor runs each job as a local subprocess: the same code path
    (pickled cells, jobs, futures polled with done()) with the resource request carried."""
    pytest.importorskip("submitit")
    import cloudpickle

    from lowres_adapt.study import make_executor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job's interpreter cannot import this file
    try:
        with make_executor("slurm", gpus_per_cell=1, partition="gpu", time_limit="1:30",
                           folder=tmp_path / "jobs") as ex:
            assert ex._executor.parameters["gpus_per_node"] == 1 and ex._executor.parameters["timeout_min"] == 90
            results = fast(tmp_path, models=["m-a"], seeds=[0]).run(executor=ex)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert numbers(results) == numbers(fast(tmp_path, "serial", models=["m-a"], seeds=[0]).run())
    assert len(list((tmp_path / "jobs").glob("*_result.pkl"))) == 2  # one job per cell

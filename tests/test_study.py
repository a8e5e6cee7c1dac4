"""Study engine: grid, run folders, resumability, failures, folder fingerprints, aggregation and reports.

Most tests use a ``Study`` whose steps are replaced by fast deterministic fakes (no model is built), so
they test the engine itself; ``test_kill_and_resume_gives_the_same_results`` runs the real
recipes/evaluator/drift modules on a tiny model, killing a study subprocess with SIGKILL mid-run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

import lowres_adapt as la
from lowres_adapt.errors import StudyConfigError
from lowres_adapt.study import Study

DOCS = [f"документ {i} һүҙ ҡала ғаилә {'әсә ' * (i % 5)}бала." for i in range(40)]


@dataclass
class FakeRecipe:
    name: str = "fake"
    r: int | None = None
    alpha: int | None = None

    def to_dict(self):
        d = {"name": self.name, "r": self.r}
        return d if self.alpha is None else {**d, "alpha": self.alpha}

    def train(self, *a, **k):  # never called: FakeStudy._train replaces the training step
        raise NotImplementedError


def fake_bpb(model: str, recipe: str, seed: int) -> float:
    """A deterministic 'bits per byte' per run, so aggregation can be checked by hand."""
    return 1.0 + 0.1 * len(model) % 7 + (0.5 if recipe == "fake-r8" else 0.0) + 0.01 * seed ** 2


class FakeStudy(Study):
    """Study with every expensive step replaced by a deterministic fake; counts the training calls."""

    calls: list

    def __init__(self, *a, fail_models=(), tokenizers=None, **k):
        super().__init__(*a, progress=False, **k)
        self.calls = []
        self.fail_models = set(fail_models)
        self.tokenizers = tokenizers or {}

    def _train(self, spec, model_path, data, output_dir):
        self.calls.append(spec.run_id)
        if spec.model in self.fail_models:
            raise OSError(f"cannot load model {spec.model!r}")
        m = SimpleNamespace(name=spec.model, recipe=spec.recipe_label, seed=spec.seed)
        trainable = 100 if spec.recipe_label == "fake-r8" else 1000
        return SimpleNamespace(model=m, tokenizer=None, metrics={
            "train_loss": 2.0 + spec.seed, "eval_loss": 2.5, "trainable_params": trainable, "total_params": 1000,
            "train_tokens": 64, "tokens_per_second": 123.0 + spec.seed, "peak_memory_bytes": 2**20,
            "wall_seconds": 0.5})

    def _load_model(self, model_path, load=None):
        if model_path in self.fail_models:
            raise OSError(f"cannot load model {model_path!r}")
        return SimpleNamespace(name=model_path, recipe="base", seed=0, parameters=lambda: []), None

    def _evaluate(self, model, tokenizer, texts):
        bpb = 3.0 if model.recipe == "base" else fake_bpb(model.name, model.recipe, model.seed)
        if texts and texts[0].startswith("REF"):
            bpb = 1.0 + (0.0 if model.recipe == "base" else 0.2)
        return {"bits_per_byte": bpb, "token_perplexity": 2 ** (bpb * 3), "word_perplexity": 2 ** (bpb * 12),
                "byte_perplexity": 2 ** bpb, "confidence_intervals": {"bits_per_byte": [bpb - 0.1, bpb + 0.1]},
                "per_document": [{"nll": 1.0}] * len(texts)}

    def _generate(self, model, tokenizer, prompts, seed):
        return [f"{p} ... {seed}" for p in prompts]

    def _drift(self, texts):
        return {"line_pass_rate": 0.75, "word_pass_rate": 0.5, "drift_rate": 0.25, "mean_target_share": 0.8,
                "n_texts": len(texts)}, [{"target_share": 1.0, "drifted": False, "first_switch": None}] * len(texts)

    def _diagnose(self, model_path, data):
        return ({"fertility": 2.0, "continued_word_rate": 0.5, "byte_fallback_rate": 0.1, "roundtrip_ok": True,
                 "letter_coverage": {"ә": {"count": 3, "whole_share": 0.5, "in_vocab": False}},
                 "warnings": ["byte fallback 10% is above 5%"]},
                self.tokenizers.get(model_path, "tok-shared"))


def needs_recipes():
    try:
        from lowres_adapt.recipes import LoRA  # noqa: F401
    except ImportError:
        pytest.skip("lowres_adapt.recipes is not available yet")


def make(tmp_path, **k):
    k.setdefault("models", ["m-a", "m-bb"])
    k.setdefault("recipes", [FakeRecipe("full"), FakeRecipe("fake", 8)])
    k.setdefault("seeds", [0, 1, 2])
    k.setdefault("corpus", DOCS)
    k.setdefault("output_dir", tmp_path / "study")
    k.setdefault("valid", 0.1)
    k.setdefault("test", 0.1)
    return FakeStudy(**k)


# --------------------------------------------------------------------------------------------- grid
def test_plan_order_and_labels(tmp_path):
    s = make(tmp_path, models=["/x/m-a", "org/m-bb"], seeds=[0, 1])
    assert s.plan() == [
        "m-a__full__s0", "m-a__full__s1", "m-a__fake-r8__s0", "m-a__fake-r8__s1",
        "m-bb__full__s0", "m-bb__full__s1", "m-bb__fake-r8__s0", "m-bb__fake-r8__s1",
    ]
    # two models with the same folder name get distinct labels
    s2 = make(tmp_path, models=["/a/model", "/b/model"], seeds=[0])
    ids = s2.plan()
    assert len(set(ids)) == len(ids) == 4


def test_bad_input_is_refused_early(tmp_path):
    with pytest.raises(StudyConfigError, match="did you mean 'lora'"):
        Study(models=["m"], recipes=["lorra"], corpus=DOCS)
    with pytest.raises(StudyConfigError, match="full fine-tuning has no rank"):
        Study(models=["m"], recipes=["full-r8"], corpus=DOCS)
    with pytest.raises(StudyConfigError, match="seed twice"):
        make(tmp_path, seeds=[0, 0])
    with pytest.raises(StudyConfigError, match="max_steps"):
        make(tmp_path, max_steps=0)
    with pytest.raises(StudyConfigError, match="known: .*ba"):
        make(tmp_path, language="bashkirr")
    with pytest.raises(StudyConfigError, match="did you mean 'ngram'"):
        make(tmp_path, drift_backend="ngramm")
    with pytest.raises(StudyConfigError, match="drift_backend.*'fasttxt'.*did you mean 'fasttext'"):
        make(tmp_path, drift_backend="fasttxt")
    with pytest.raises(StudyConfigError, match="unknown study option 'max_step'.*did you mean 'max_steps'"):
        Study.from_config({"models": ["m"], "recipes": [FakeRecipe()], "corpus": DOCS, "max_step": 3})
    with pytest.raises(StudyConfigError, match="same recipe twice"):
        make(tmp_path, recipes=[FakeRecipe("full"), FakeRecipe("full")])


def test_corpus_too_small_for_splits(tmp_path):
    s = make(tmp_path, corpus=["one document", "two"], valid=0.3, test=0.3)
    with pytest.raises(StudyConfigError, match="too small"):
        s.run()
    assert not (tmp_path / "study" / "study.json").exists()  # refused before anything was written


# --------------------------------------------------------------------------------------------- running
def test_run_writes_folders_and_aggregates(tmp_path):
    s = make(tmp_path, reference_corpus=["REF один", "REF два"])
    res = s.run()
    out = tmp_path / "study"
    assert len(s.calls) == 12 and not res.failed
    meta = json.loads((out / "study.json").read_text())
    assert meta["split_fingerprint"] == la.split_fingerprint(la.split_documents(DOCS, 0.1, 0.1, 0))
    assert meta["library_versions"]["torch"]
    for rid in s.plan():
        d = out / "runs" / rid
        cfg = json.loads((d / "config.json").read_text())
        rec = json.loads((d / "metrics.json").read_text())
        assert cfg["seed"] == rec["seed"] and rec["status"] == "ok"
        assert rec["split_fingerprint"] == meta["split_fingerprint"]
        gens = [json.loads(x) for x in (d / "generations.jsonl").read_text().splitlines()]
        assert len(gens) == len(meta["settings"]["prompts"]) and gens[0]["continuation"].endswith(str(rec["seed"]))
        assert rec["reference"] == {"bits_per_byte_before": 1.0, "bits_per_byte_after": 1.2, "n_documents": 2}
    # mean and sample std over seeds, recomputed by hand
    table = {(r["model"], r["recipe"]): r for r in res.table()}
    vals = [fake_bpb("m-bb", "fake-r8", seed) for seed in (0, 1, 2)]
    mean = sum(vals) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)
    row = table[("m-bb", "fake-r8")]
    assert row["bits_per_byte_mean"] == pytest.approx(mean) and row["bits_per_byte_std"] == pytest.approx(std)
    assert row["trainable_share_mean"] == pytest.approx(0.1) and row["n_ok"] == 3
    assert row["ref_bits_per_byte_delta_mean"] == pytest.approx(0.2)
    assert table[("m-a", "base")]["bits_per_byte_mean"] == 3.0 and table[("m-a", "base")]["n_ok"] == 1
    # reports
    md = (out / "results.md").read_text()
    assert "| m-bb | fake-r8 | 8 | 100 | 10.0% | " in md and f"{mean:.3f} ± {std:.3f}" in md
    assert "different tokenizers" not in md  # one tokenizer: no note
    assert "Tokenizer diagnostics" in md and "50% ✗" in md and "byte fallback 10%" in md
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    got = {(r["model"], r["recipe"]): float(r["bits_per_byte_mean"]) for r in rows}
    assert got[("m-bb", "fake-r8")] == pytest.approx(mean)
    assert len(list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))) == 12 + 2
    j = json.loads((out / "results.json").read_text())
    assert len(j["records"]) == 12 and "per_document" not in j["records"][0]["test"]
    for name in ("bpb_vs_trainable_params.png", "bpb_by_model.png", "line_pass_by_model.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the folder reads back into the same results
    again = la.StudyResults.load(out)
    assert again.table() == res.table()


def test_resume_skips_finished_and_redoes_partial(tmp_path):
    s = make(tmp_path, seeds=[0, 1])
    first = s.run()
    out = tmp_path / "study" / "runs"
    # simulate a run killed mid-way (config.json and a stray temp file, no metrics.json) and one whose
    # metrics.json is half-written (cannot happen with atomic writes, but must never count as finished)
    (out / "m-a__full__s1" / "metrics.json").unlink()
    (out / "m-a__full__s1" / ".metrics.json.abc.tmp").write_text('{"status": "ok"')
    p = out / "m-bb__fake-r8__s0" / "metrics.json"
    p.write_text(p.read_text()[: len(p.read_text()) // 2])
    s2 = make(tmp_path, seeds=[0, 1])
    second = s2.run()
    assert s2.calls == ["m-a__full__s1", "m-bb__fake-r8__s0"]
    assert not (out / "m-a__full__s1" / ".metrics.json.abc.tmp").exists()  # partial folder was cleared
    strip = lambda t: [{k: v for k, v in r.items() if not k.startswith(("run_seconds",))} for r in t]  # noqa: E731
    assert strip(second.table()) == strip(first.table())
    # extending the grid with a new seed reuses every finished run
    s3 = make(tmp_path, seeds=[0, 1, 2])
    s3.run()
    assert s3.calls == ["m-a__full__s2", "m-a__fake-r8__s2", "m-bb__full__s2", "m-bb__fake-r8__s2"]


def test_failed_model_is_recorded_and_grid_goes_on(tmp_path):
    s = make(tmp_path, fail_models={"m-a"}, seeds=[0])
    res = s.run()
    out = tmp_path / "study"
    assert [r["run_id"] for r in res.failed] == ["m-a__full__s0", "m-a__fake-r8__s0"]
    assert {r["run_id"] for r in res.runs if r["status"] == "ok"} == {"m-bb__full__s0", "m-bb__fake-r8__s0"}
    err = (out / "runs" / "m-a__full__s0" / "error.txt").read_text()
    assert err.startswith("OSError: cannot load model 'm-a'") and "Traceback (most recent call last)" in err
    assert not (out / "runs" / "m-a__full__s0" / "metrics.json").exists()
    assert (out / "base" / "m-a" / "error.txt").exists()
    md = res.to_markdown()
    assert "## Failed runs" in md and "| m-a__full__s0 | OSError: cannot load model 'm-a' |" in md
    # a later run retries failed runs only
    s2 = make(tmp_path, seeds=[0])
    res2 = s2.run()
    assert s2.calls == ["m-a__full__s0", "m-a__fake-r8__s0"] and not res2.failed
    # ... unless retry_failed=False
    s3 = make(tmp_path, seeds=[0], fail_models={"m-a"})
    s3.run()
    s4 = make(tmp_path, seeds=[0], retry_failed=False)
    s4.run()
    assert s4.calls == []


def test_folder_with_different_study_is_refused(tmp_path):
    make(tmp_path, seeds=[0]).run()
    with pytest.raises(StudyConfigError, match="different settings.*max_steps: 200 -> 7"):
        make(tmp_path, seeds=[0], max_steps=7).run()
    with pytest.raises(StudyConfigError, match="split_fingerprint"):
        make(tmp_path, seeds=[0], corpus=DOCS[:-1]).run()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StudyConfigError, match="not empty and holds no study.json"):
        make(tmp_path, seeds=[0], output_dir=tmp_path / "other").run()
    # a finished run under the same id but another recipe config is refused, not overwritten
    with pytest.raises(StudyConfigError, match="another recipe config"):
        make(tmp_path, seeds=[0], recipes=[FakeRecipe("full"), FakeRecipe("fake", 8, alpha=99)]).run()


def test_the_drift_backend_that_ran_is_recorded_and_kept(tmp_path):
    # "auto" and the default both run the n-gram backend, and study.json says "ngram", not "auto"
    s = make(tmp_path, seeds=[0], models=["m"], drift_backend="auto")
    assert s.run().study["settings"]["drift_backend"] == "ngram"
    make(tmp_path, seeds=[0], models=["m"]).run()  # the default resumes it: the same backend runs
    with pytest.raises(StudyConfigError, match=r"drift was scored with backend 'ngram', but this study runs "
                                               r"'fasttext'; pass drift_backend='ngram' to resume"):
        make(tmp_path, seeds=[0], models=["m"], drift_backend="fasttext").run()
    # a folder of an earlier version that stored "auto": named with the backend its runs recorded
    meta = json.loads((tmp_path / "study" / "study.json").read_text())
    meta["settings"]["drift_backend"] = "auto"
    (tmp_path / "study" / "study.json").write_text(json.dumps(meta))
    rec_path = next((tmp_path / "study" / "runs").glob("*/metrics.json"))
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, "drift": {**rec["drift"], "backend": "fasttext"}}))
    with pytest.raises(StudyConfigError, match=r"backend 'auto' \(which ran 'fasttext'\), but this study runs "
                                               r"'ngram'; use another output_dir"):
        make(tmp_path, seeds=[0], models=["m"]).run()


def test_mixed_tokenizers_note(tmp_path):
    s = make(tmp_path, seeds=[0], tokenizers={"m-a": "tok-1", "m-bb": "tok-2"})
    md = s.run().to_markdown()
    assert "different tokenizers (m-a; m-bb)" in md and "bits per byte" in md


def test_splits_dict_and_prompts(tmp_path):
    splits = {"train": DOCS[:30], "valid": DOCS[30:35], "test": DOCS[35:]}
    s = make(tmp_path, corpus=splits, seeds=[0], models=["m"], prompts=["Башҡортостан", "Өфө"])
    res = s.run()
    assert res.study["split_sizes"] == {"train": 30, "valid": 5, "test": 5}
    assert res.study["settings"]["prompts"] == ["Башҡортостан", "Өфө"]
    # default prompts: the first words of the test documents
    s2 = make(tmp_path, corpus=splits, seeds=[0], models=["m"], output_dir=tmp_path / "s2", prompt_words=2)
    assert s2.run().study["settings"]["prompts"][0] == " ".join(DOCS[35].split()[:2])


def test_from_config_yaml(tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(textwrap.dedent("""
        models: [tiny:gpt2, tiny:llama]
        recipes: [full, lora-r16, {name: qlora, r: 8}]
        seeds: [0, 1]
        corpus: corpus.txt
        language: {code: tt, name: Tatar, special_letters: әөүҗңһ, reference_languages: [ru]}
        max_steps: 5
    """))
    needs_recipes()
    s = Study.from_config(cfg, output_dir=str(tmp_path / "o"))
    assert s.language.name == "Tatar" and s.language.reference_languages == ("ru",)
    assert s.plan()[:3] == ["tiny-gpt2__full__s0", "tiny-gpt2__full__s1", "tiny-gpt2__lora-r16__s0"]
    assert len(s.plan()) == 12 and s.output_dir == tmp_path / "o"


def test_example_config_is_valid():
    """examples/study.yaml parses into a Study (validated without building any model)."""
    needs_recipes()
    path = Path(__file__).resolve().parents[1] / "examples" / "study.yaml"
    s = Study.from_config(path)
    assert s.plan() and s.max_steps >= 1


# --------------------------------------------------------------------------------------------- real modules
KILL_SCRIPT = """
import json, sys
import lowres_adapt as la
cfg = json.loads(sys.argv[1])
la.Study(**cfg).run()
"""


def _tiny_real_config(output_dir: Path) -> dict:
    return {"models": ["tiny:gpt2"], "recipes": ["full", "lora-r4"], "seeds": [0], "corpus": "sample:ba",
            "output_dir": str(output_dir), "valid": 0.1, "test": 0.1, "max_steps": 4, "block_size": 32,
            "batch_size": 2, "learning_rate": 1e-3, "evaluate_base": False, "num_prompts": 2,
            "evaluation": {"bootstrap_samples": 20}, "generation": {"max_new_tokens": 4},
            "drift_backend": "ngram", "progress": False}


def _deterministic(rec: dict) -> dict:
    """The numbers of a run that must not depend on being interrupted (timings and dates excluded)."""
    return {"run_id": rec["run_id"], "status": rec["status"], "train_loss": rec["train"]["train_loss"],
            "trainable": rec["train"]["trainable_params"], "bits_per_byte": rec["test"]["bits_per_byte"],
            "token_perplexity": rec["test"]["token_perplexity"], "drift": rec["drift"]["n_texts"],
            "split": rec["split_fingerprint"]}


def test_kill_and_resume_gives_the_same_results(tmp_path):
    """A study subprocess killed with SIGKILL in the middle of its second run, then resumed, gives the
    results of an uninterrupted study; the half-done run is redone, the finished one read back."""
    import os
    import signal
    import subprocess
    import sys
    import time

    needs_recipes()
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    first, second = "tiny-gpt2__full__s0", "tiny-gpt2__lora-r4__s0"

    def start(folder):  # output to a file: a pipe nobody reads could fill up and stall the study
        log = open(tmp_path / f"{folder.name}.log", "w")  # noqa: SIM115 (closed with the process below)
        return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, json.dumps(_tiny_real_config(folder))],
                                stdout=log, stderr=subprocess.STDOUT), log

    (proc, log), (clean_proc, clean_log) = start(killed_dir), start(clean_dir)  # the clean one runs alongside
    try:
        deadline = time.monotonic() + 300  # generous: the suite may run on a loaded machine
        while not (killed_dir / "runs" / second / "config.json").exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the study did not reach its second run in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL as well; also when an assertion above failed
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert (killed_dir / "runs" / first / "metrics.json").is_file()
    assert not (killed_dir / "runs" / second / "metrics.json").exists()  # killed mid-run: not finished
    finished_at = json.loads((killed_dir / "runs" / first / "metrics.json").read_text())["finished_at"]

    resumed = Study(**_tiny_real_config(killed_dir)).run()
    clean_proc.wait(timeout=300)
    clean_log.close()
    assert clean_proc.returncode == 0, (tmp_path / "clean.log").read_text()[-2000:]
    clean = Study(**_tiny_real_config(clean_dir)).run()  # reads the finished runs back
    assert [_deterministic(r) for r in resumed.runs] == [_deterministic(r) for r in clean.runs]
    assert all(r["status"] == "ok" for r in resumed.runs)
    # the finished run was read back, not redone
    assert resumed.runs[0]["finished_at"] == finished_at
    # a second method: the saved LoRA adapter, reloaded and scored by the evaluator, gives the run's number
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    run_dir = killed_dir / "runs" / second / "train"
    model = AutoPeftModelForCausalLM.from_pretrained(run_dir)
    tok = AutoTokenizer.from_pretrained(run_dir)
    test = la.split_documents(la.sample_corpus("ba"), valid=0.1, test=0.1, seed=0)["test"]
    again = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(model, tok, test)
    assert again.bits_per_byte == pytest.approx(resumed.runs[1]["test"]["bits_per_byte"], rel=1e-5)
    # the reports name both runs, and the table has one row per model x recipe
    assert [r["recipe"] for r in resumed.table()] == ["full", "lora-r4"]
    report = (killed_dir / "results.md").read_text(encoding="utf-8")
    assert "| tiny-gpt2 | full |" in report and "| tiny-gpt2 | lora-r4 | 4 |" in report


def test_staged_recipes_get_readable_distinct_labels():
    """LlamaTurk's c / c+i / i variants on one base recipe: one run id each, named after the stages."""
    import lowres_adapt as la

    variants = [la.StagedRecipe(la.LoRA(r=8), [la.Stage("c")]),
                la.StagedRecipe(la.LoRA(r=8), [la.Stage("c"), la.Stage("i", kind="instruction")]),
                la.StagedRecipe(la.LoRA(r=8), [la.Stage("i", kind="instruction")])]
    plan = Study(models=["tiny:gpt2"], recipes=variants, seeds=[0], corpus=DOCS).plan()
    assert plan == ["tiny-gpt2__lora-r8-c__s0", "tiny-gpt2__lora-r8-c-i__s0", "tiny-gpt2__lora-r8-i__s0"]


def test_tokenizer_warnings_reach_the_user_before_any_training(tmp_path, caplog):
    """The diagnostics' warnings are logged (printed above the progress bar with progress=True) as soon as
    they are computed, so a user can stop before hours of training; each names its model."""
    import logging

    seen_at_first_train = []

    class Recording(FakeStudy):
        def _train(self, spec, model_path, data, output_dir):
            if not seen_at_first_train:
                seen_at_first_train.append([r.getMessage() for r in caplog.records])
            return super()._train(spec, model_path, data, output_dir)

    with caplog.at_level(logging.WARNING, logger="lowres_adapt.study"):
        Recording(models=["m-a"], recipes=[FakeRecipe("full")], seeds=[0], corpus=DOCS,
                  output_dir=tmp_path / "study", valid=0.1, test=0.1).run()
    assert "tokenizer of m-a: byte fallback 10% is above 5%" in seen_at_first_train[0]


def test_report_warns_about_intervals_over_few_documents(tmp_path):
    from lowres_adapt.evaluation._common import few_units_warning

    class Warned(FakeStudy):
        def _evaluate(self, model, tokenizer, texts):  # what PerplexityResult.to_dict() carries
            w = few_units_warning(len(texts), "documents")
            return {**super()._evaluate(model, tokenizer, texts), "warnings": [w] if w else []}

    res = Warned(models=["m"], recipes=[FakeRecipe("full")], seeds=[0], corpus=DOCS, valid=0.1, test=0.1,
                 output_dir=tmp_path / "s").run()
    assert res.warnings() == ["test: the confidence intervals rest on 4 documents (fewer than 10): a bootstrap "
                              "over so few documents is unreliable; read them as rough, and score more documents "
                              "for real intervals (m__base, m__full__s0)"]
    assert f"> **Warning:** {res.warnings()[0]}" in res.to_markdown()
    assert json.loads(res.to_json())["warnings"] == res.warnings()
    again = Warned(models=["m"], recipes=[FakeRecipe("full")], seeds=[0], corpus=DOCS * 3, valid=0.1, test=0.1,
                   output_dir=tmp_path / "t").run()
    assert again.warnings() == [] and "**Warning:**" not in again.to_markdown()  # 12 test documents

"""The ``lowres-adapt`` command: help and version, exit codes, one-line errors, and each subcommand's
numbers checked against the library call it wraps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lowres_adapt as la
from lowres_adapt.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("diagnose", "train", "evaluate", "drift", "study")


def needs_recipes():
    try:
        from lowres_adapt.recipes import LoRA  # noqa: F401
    except ImportError:
        pytest.skip("lowres_adapt.recipes is not available yet")


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, ba_docs) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "ba.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in ba_docs), encoding="utf-8")
    return path


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"lowres-adapt {la.__version__}"
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(c in out for c in COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and "example" in out and "--debug" in out, command
    assert main([]) == EXIT_USAGE  # no command: the help, and a usage exit code
    assert "<command>" in capsys.readouterr().out


def test_console_script_is_installed():
    """The installed entry point answers --version without importing torch (fast)."""
    code = "import sys; from lowres_adapt.cli import main; main(['--version'])"
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"lowres-adapt {la.__version__}"
    probe = "import sys, lowres_adapt.cli as c; c.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60).stdout.strip() == "False"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "m", "--corpus", "c.jsonl", "--output-dir", "o", "--max-steps", "0"])
    assert e.value.code == EXIT_USAGE
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["study", "x.yaml", "--seeds", "0,a"])
    assert e.value.code == EXIT_USAGE


@pytest.mark.parametrize(("config", "expected"), [
    ("recipes: [full, lorra]", ["unknown recipe 'lorra'", "did you mean 'lora'", "known: full, lora, qlora"]),
    ("recipes: [full]\nmax_step: 5", ["unknown study option 'max_step'", "did you mean 'max_steps'"]),
    ("recipes: [full]\nlanguage: bashkirr", ["unknown language 'bashkirr'", "known: ba, en, kk, ru, tt"]),
    ("recipes: [full]\nevaluation: {bootstrap: 5}", ["unknown evaluation option 'bootstrap'",
                                                     "bootstrap_samples"]),
])
def test_bad_config_is_one_line_error(tmp_path, capsys, config, expected):
    needs_recipes()
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"models: [tiny:gpt2]\ncorpus: sample:ba\n{config}\n", encoding="utf-8")
    assert main(["study", str(cfg), "--dry-run"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("lowres-adapt: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for piece in expected:
        assert piece in err, (piece, err)
    with pytest.raises(Exception):  # noqa: B017 (--debug re-raises: the traceback is there on request)
        main(["study", str(cfg), "--dry-run", "--debug"])


def test_missing_files_and_small_corpus(tmp_path, capsys):
    needs_recipes()
    assert main(["study", str(tmp_path / "nope.yaml")]) == EXIT_ERROR
    assert "nope.yaml' does not exist" in capsys.readouterr().err
    cfg = tmp_path / "study.yaml"
    cfg.write_text("models: [tiny:gpt2]\nrecipes: [full]\ncorpus: [one doc, two docs]\ntest: 0.05\n",
                   encoding="utf-8")
    assert main(["study", str(cfg), "--output-dir", str(tmp_path / "o")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "too small for the requested splits" in err and len(err.strip().splitlines()) == 1


def test_study_dry_run_lists_the_plan(capsys):
    needs_recipes()
    cfg = ROOT / "examples" / "study.yaml"
    assert main(["study", str(cfg), "--dry-run", "--seeds", "3", "--max-steps", "2"]) == EXIT_OK
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("ok: ")]
    expected = la.Study.from_config(cfg, seeds=[3]).plan()
    assert [ln.strip() for ln in lines[2:]] == expected and len(expected) == 6
    assert lines[1] == "6 runs:" and "max_steps=2" in lines[0]


def test_diagnose_matches_library(tiny_gpt2_path, corpus_file, ba_docs, tmp_path, capsys):
    out_json = tmp_path / "d.json"
    assert main(["diagnose", str(tiny_gpt2_path), "--corpus", str(corpus_file), "--json", str(out_json),
                 "--quiet"]) == EXIT_OK
    printed = capsys.readouterr().out
    got = json.loads(out_json.read_text(encoding="utf-8"))
    want = la.diagnose_tokenizer(str(tiny_gpt2_path), ba_docs, language=la.BASHKIR, progress=False).to_dict()
    assert got["n_documents"] == len(ba_docs)
    assert got["reports"][0]["fertility"] == pytest.approx(want["fertility"])
    assert got["reports"][0]["letter_coverage"]["ҡ"]["count"] == want["letter_coverage"]["ҡ"]["count"] > 0
    assert f"{want['fertility']:.2f}" in printed


def test_evaluate_matches_library(tiny_gpt2_path, corpus_file, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_json = tmp_path / "e.json"
    assert main(["evaluate", str(tiny_gpt2_path), "--corpus", str(corpus_file), "--split", "test", "--valid", "0.1",
                 "--test", "0.1", "--bootstrap-samples", "0", "--json", str(out_json), "--quiet"]) == EXIT_OK
    got = json.loads(out_json.read_text(encoding="utf-8"))
    test_docs = la.split_documents(la.load_corpus(corpus_file), valid=0.1, test=0.1, seed=0)["test"]
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    want = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(model, tok, test_docs)
    assert got["n_documents"] == len(test_docs) and got["n_bytes"] == sum(len(d.encode()) for d in test_docs)
    assert got["bits_per_byte"] == pytest.approx(want.bits_per_byte, rel=1e-6)


def test_drift_texts_matches_library(tmp_path, ba_docs, capsys):
    texts = [ba_docs[0].splitlines()[0][:120], "Это предложение написано по-русски, а не по-башкирски.",
             "This sentence is plainly English."]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out_json = tmp_path / "dr.json"
    assert main(["drift", "--texts", str(path), "--backend", "ngram", "--json", str(out_json), "-q"]) == EXIT_OK
    got = json.loads(out_json.read_text(encoding="utf-8"))
    want = la.DriftDetector(target=la.BASHKIR, backend="ngram").evaluate(texts)
    assert got["n_texts"] == 3 and got["line_pass_rate"] == pytest.approx(want["line_pass_rate"])
    assert got["texts"] == texts
    assert main(["drift", "--model", "x"]) == EXIT_ERROR  # generation needs prompts
    assert "--model needs --prompts" in capsys.readouterr().err


def test_train_writes_model_and_metrics(tiny_gpt2_path, corpus_file, tmp_path, capsys):
    needs_recipes()
    out = tmp_path / "run"
    assert main(["train", str(tiny_gpt2_path), "--recipe", "lora-r4", "--corpus", str(corpus_file),
                 "--output-dir", str(out), "--max-steps", "2", "--block-size", "32", "--batch-size", "2",
                 "--json", str(tmp_path / "m.json"), "-q"]) == EXIT_OK
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert (out / "adapter_config.json").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert f"saved to {out}" in capsys.readouterr().out
    assert main(["train", str(tiny_gpt2_path), "--recipe", "lora-x", "--corpus", str(corpus_file),
                 "--output-dir", str(out)]) == EXIT_ERROR
    assert "unknown recipe 'lora-x'" in capsys.readouterr().err


def test_study_runs_and_refuses_other_settings(tmp_path, capsys):
    needs_recipes()
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent("""
        models: [tiny:gpt2]
        recipes: [full]
        seeds: [0]
        corpus: sample:ba
        max_steps: 2
        block_size: 32
        batch_size: 2
        evaluate_base: false
        evaluation: {bootstrap_samples: 0}
        generation: {max_new_tokens: 4}
        num_prompts: 2
    """), encoding="utf-8")
    out = tmp_path / "o"
    assert main(["study", str(cfg), "--output-dir", str(out), "-q"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "| tiny-gpt2 | full |" in printed and f"report: {out / 'results.md'}" in printed
    for name in ("results.md", "results.csv", "results.json", "study.json"):
        assert (out / name).is_file(), name
    # the same folder with other settings: refused with the difference named
    assert main(["study", str(cfg), "--output-dir", str(out), "--max-steps", "3", "-q"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "holds a study with different settings" in err and "max_steps" in err


# --------------------------------------------------------------------------------------------- parity with Python
SAKHA = {"code": "sah", "name": "Sakha", "script": "Cyrillic", "special_letters": "ҕҥөүһ",
         "reference_languages": ["ru", "en"]}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_language_file_works_in_the_cli_and_in_a_study(tmp_path, suffix):
    import yaml

    path = tmp_path / f"sakha{suffix}"
    path.write_text(json.dumps(SAKHA, ensure_ascii=False) if suffix == ".json"
                    else yaml.safe_dump(SAKHA, allow_unicode=True), encoding="utf-8")
    texts = tmp_path / "t.txt"
    texts.write_text("Бүгүн күн сылаас, оҕолор үөрэ-көтө оонньууллар.\nЭто предложение написано по-русски.\n",
                     encoding="utf-8")
    assert main(["drift", "--texts", str(texts), "--language", str(path), "--json", str(tmp_path / "d.json"),
                 "-q"]) == EXIT_OK
    got = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    want = la.DriftDetector(la.LanguageProfile.from_dict({**SAKHA, "reference_languages": ("ru", "en")})).evaluate(
        texts.read_text(encoding="utf-8").splitlines())
    assert got["target"] == "sah" and got["drifted_into"] == want["drifted_into"] == {"ru": 1}
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"models: [tiny:gpt2]\nrecipes: [full]\ncorpus: sample:ba\nlanguage: {path}\n", encoding="utf-8")
    study = la.Study.from_config(cfg)
    assert study.language.code == "sah" and study.language.reference_languages == ("ru", "en")
    assert study.language.special_letters == "ҕҥөүһ"


def test_unreadable_files_get_one_line_naming_the_file(tmp_path, capsys):
    binary = tmp_path / "file.bin"
    binary.write_bytes(bytes(range(128, 256)))
    bad_lang = tmp_path / "lang.yaml"
    bad_lang.write_text("code: sah\nnam: Sakha\n", encoding="utf-8")
    prompts = tmp_path / "p.txt"
    prompts.write_text("Бүгүн\n", encoding="utf-8")
    cases = [
        (["drift", "--texts", str(binary)], [f"texts file '{binary}' is not UTF-8 text (byte 0x80 at offset 0",
                                             "pass a UTF-8 text file with one text per line"]),
        (["drift", "--texts", str(tmp_path)], [f"texts file '{tmp_path}' is a folder, not a file"]),
        (["drift", "--texts", str(tmp_path / "no.txt")], ["no.txt' does not exist; pass a UTF-8 text file"]),
        (["drift", "--model", "sample:mini-gpt2-ru", "--prompts", str(binary)], ["prompts file", "not UTF-8"]),
        (["drift", "--texts", str(prompts), "--language", str(tmp_path / "none.yaml")],
         ["language file", "none.yaml' does not exist", "write the profile's fields"]),
        (["drift", "--texts", str(prompts), "--language", str(bad_lang)],
         ["unknown LanguageProfile field(s) ['nam']", "did you mean 'name'"]),
        (["study", str(binary)], ["study config", "is not UTF-8 text"]),
        (["study", str(tmp_path)], ["study config", "is a folder"]),
        (["diagnose", "sample:mini-gpt2-ru", "--corpus", "sample:ba", "--parallel", str(tmp_path)],
         ["parallel file", "is a folder"]),
    ]
    for argv, pieces in cases:
        assert main(argv) == EXIT_ERROR, argv
        err = capsys.readouterr().err
        assert err.startswith("lowres-adapt: error: ") and len(err.strip().splitlines()) == 1, (argv, err)
        for piece in pieces:
            assert piece in err, (argv, piece, err)


def test_drift_model_takes_the_sampling_options_of_generate(tmp_path, capsys):
    prompts = ["Бөгөн һауа", "Беҙ мәктәпкә"]
    path = tmp_path / "p.txt"
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    argv = ["drift", "--model", "sample:mini-gpt2-ru", "--prompts", str(path), "--max-new-tokens", "8", "-q"]
    assert main([*argv, "--do-sample", "--temperature", "0.8", "--top-k", "20", "--top-p", "0.9",
                 "--repetition-penalty", "1.3", "--seed", "1", "--json", str(tmp_path / "s.json")]) == EXIT_OK
    sampled = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["texts"]
    assert sampled == la.generate("sample:mini-gpt2-ru", None, prompts, seed=1, max_new_tokens=8, do_sample=True,
                                  temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3)
    assert main([*argv, "--json", str(tmp_path / "g.json")]) == EXIT_OK
    greedy = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))["texts"]
    assert greedy == la.generate("sample:mini-gpt2-ru", None, prompts, max_new_tokens=8) != sampled
    capsys.readouterr()
    assert main([*argv, "--temperature", "0.7"]) == EXIT_ERROR
    assert "--temperature apply when sampling; add --do-sample" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*argv, "--do-sample", "--top-p", "1.5"])
    assert e.value.code == EXIT_USAGE and "expected a number in (0, 1]" in capsys.readouterr().err


def test_sample_spec_works_in_every_subcommand(tmp_path, capsys):
    model = "sample:mini-gpt2-ru"
    assert main(["plan", model, "--block-size", "64", "--batch-size", "2"]) == EXIT_OK
    assert "trainable of" in capsys.readouterr().out
    assert main(["diagnose", model, "--corpus", "sample:ba", "--max-docs", "3", "-q"]) == EXIT_OK
    assert "fertility" in capsys.readouterr().out
    assert main(["evaluate", model, "--tokenizer", model, "--corpus", "sample:ba", "--split", "all",
                 "--max-docs", "12", "--max-length", "64", "-q"]) == EXIT_OK
    assert "| bits_per_byte |" in capsys.readouterr().out
    # train and drift --model take it too (test_quiet_silences_the_libraries, the sampling test above)


def test_evaluate_says_when_intervals_rest_on_few_documents(tmp_path, capsys):
    argv = ["evaluate", "sample:mini-gpt2-ru", "--corpus", "sample:ba", "--split", "all", "--max-length", "64",
            "--bootstrap-samples", "50", "--json", str(tmp_path / "e.json"), "-q"]
    assert main([*argv, "--max-docs", "2"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "warning: the confidence intervals rest on 2 documents (fewer than 10)" in out
    assert "UserWarning" not in err  # said once, with the table
    assert json.loads((tmp_path / "e.json").read_text())["warnings"] == [out.split("warning: ")[1].strip()]
    assert main([*argv, "--max-docs", "12"]) == EXIT_OK
    assert "warning" not in capsys.readouterr().out


def test_quiet_silences_the_libraries(tmp_path, capfd):
    import datasets
    from transformers.utils import logging as hf_logging

    argv = ["train", "sample:mini-gpt2-ru", "--corpus", "sample:ba", "--max-steps", "1", "--block-size", "32",
            "--batch-size", "2"]
    assert main([*argv, "--output-dir", str(tmp_path / "q"), "-q"]) == EXIT_OK
    err = capfd.readouterr().err
    assert err.startswith("training LoRA(") and len(err.strip().splitlines()) == 1, err  # the command's own line
    # (without -q, datasets' "tokenize train_texts ... examples/s" bars and transformers' warnings are there)
    # the settings are back afterwards: main may be called from Python
    assert datasets.is_progress_bar_enabled() and hf_logging.is_progress_bar_enabled()


def test_study_dry_run_checks_paths_without_loading(tmp_path, capsys, monkeypatch):
    import transformers

    def no_weights(*a, **k):
        raise AssertionError("--dry-run loaded weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"models: [sample:mini-gpt2-ru, gpt2, {tmp_path / 'no-model'}]\nrecipes: [lora]\n"
                   f"corpus: {tmp_path / 'no-corpus.jsonl'}\nprompts: {tmp_path / 'no-prompts.txt'}\n", encoding="utf-8")
    assert main(["study", str(cfg), "--dry-run"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    for piece in ("no-model' does not exist", "no-corpus.jsonl' does not exist", "prompts file", "no-prompts.txt"):
        assert piece in err, (piece, err)
    cfg.write_text("models: [tiny:gpt2]\nrecipes: [lora]\ncorpus: hf:bad spec with spaces\n", encoding="utf-8")
    assert main(["study", str(cfg), "--dry-run"]) == EXIT_ERROR
    assert "is not a dataset spec; use 'hf:<dataset id>[:<config>][@<split>]'" in capsys.readouterr().err
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "Бөгөн"}\n', encoding="utf-8")
    cfg.write_text(f"models: [sample:mini-gpt2-ru, gpt2]\nrecipes: [lora]\ncorpus: {corpus}\n"
                   "reference_corpus: hf:wikimedia/wikipedia:20231101.ru@train\n", encoding="utf-8")
    assert main(["study", str(cfg), "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "ok: model 'gpt2': hub id (not checked offline)" in out and f"ok: corpus '{corpus}': file" in out
    assert "ok: reference_corpus 'hf:wikimedia/wikipedia:20231101.ru@train': hub dataset" in out

"""Multiple-choice evaluation against a brute-force, token-by-token computation on a hand-made task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lowres_adapt as la
from lowres_adapt.evaluation.downstream import MultipleChoiceItem, _encode_pair

RECORDS = [
    {"context": "Ҡояш көндөҙ", "choices": ["ҡалҡа.", "батмай, ә йоҡлай."], "label": 0},
    {"context": "Һыу йылғала", "choices": ["аға.", "осмай.", "тауҙа үҫә."], "label": 0},
    {"context": "Балалар мәктәпкә", "choices": ["бара.", "һөйләй."], "label": 1},
    {"context": "Әсәйем тәмле бәлеш", "choices": ["бешерә.", "уҡый."], "label": 0},
    {"context": "Ҡыш көнө ҡар", "choices": ["яуа.", "йөҙә."], "label": 1},
    {"context": "Урал тауҙары бик", "choices": ["бейек.", "тәмле."], "label": 0},
]
TEXTS = [r["context"] + " " + c for r in RECORDS for c in r["choices"]] * 5


@pytest.fixture(scope="module")
def tok():
    return la.train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    return la.build_tiny_model("gpt2", tok, hidden_size=16, num_layers=1, num_heads=2, max_positions=128).eval()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    path = tmp_path_factory.mktemp("task") / "hand.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n\n", encoding="utf-8")
    return la.MultipleChoiceTask.from_jsonl(path)


def brute_loglik(model, tok, context: str, continuation: str, max_length: int | None = None) -> float:
    """Σ log p(continuation token | everything before), one forward pass per token, no batching."""
    prefix = tok.eos_token_id
    ctx = tok(context, add_special_tokens=False)["input_ids"] if context else []
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    assert whole[: len(ctx)] == ctx  # clean boundary in this task: the split is the plain one
    seq = [prefix] + whole
    # one window for the whole continuation: the last max_length inputs (the context is cut on the left)
    start = 0 if max_length is None else max(0, len(seq) - 1 - max_length)
    total = 0.0
    with torch.no_grad():
        for pos in range(len(ctx) + 1, len(seq)):
            history = seq[start:pos]
            logits = model(input_ids=torch.tensor([history])).logits[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[seq[pos]])
    return total


def test_zero_shot_matches_brute_force(model, tok, task):
    res = la.evaluate_multiple_choice(model, tok, task, batch_size=3, bootstrap_samples=200)
    assert res.n_items == len(RECORDS) and res.task == "hand"
    correct, correct_norm = [], []
    for rec, row in zip(RECORDS, res.per_item, strict=True):
        expected = [brute_loglik(model, tok, rec["context"], " " + c) for c in rec["choices"]]
        np.testing.assert_allclose(row["loglik"], expected, rtol=1e-5, atol=1e-5)
        per_byte = [ll / len(c.encode()) for ll, c in zip(expected, rec["choices"], strict=True)]
        assert row["pred"] == int(np.argmax(expected)) and row["pred_norm"] == int(np.argmax(per_byte))
        correct.append(row["pred"] == rec["label"])
        correct_norm.append(row["pred_norm"] == rec["label"])
    assert res.acc == pytest.approx(np.mean(correct))
    assert res.acc_norm == pytest.approx(np.mean(correct_norm))
    lo, hi = res.confidence_intervals["acc"]
    assert 0.0 <= lo <= res.acc <= hi <= 1.0


def test_few_shot_prompts_and_seeding(model, tok, task):
    res = la.evaluate_multiple_choice(model, tok, task, num_fewshot=2, seed=3, bootstrap_samples=0)
    again = la.evaluate_multiple_choice(model, tok, task, num_fewshot=2, seed=3, batch_size=1,
                                        bootstrap_samples=0)
    other = la.evaluate_multiple_choice(model, tok, task, num_fewshot=2, seed=4, bootstrap_samples=0)
    shots = [row["fewshot"] for row in res.per_item]
    assert shots == [row["fewshot"] for row in again.per_item]
    assert shots != [row["fewshot"] for row in other.per_item]
    for i, s in enumerate(shots):
        assert len(s) == 2 and len(set(s)) == 2 and i not in s
    # the few-shot prompt written by hand, scored by brute force
    i = 1
    a, b = (RECORDS[k] for k in shots[i])
    prompt = (f"{a['context']} {a['choices'][a['label']]}\n\n{b['context']} {b['choices'][b['label']]}\n\n"
              f"{RECORDS[i]['context']}")
    assert task.prompt(i, shots[i]) == prompt
    expected = [brute_loglik(model, tok, prompt, " " + c) for c in RECORDS[i]["choices"]]
    np.testing.assert_allclose(res.per_item[i]["loglik"], expected, rtol=1e-5, atol=1e-5)
    flat = [ll for r in res.per_item for ll in r["loglik"]]
    flat_again = [ll for r in again.per_item for ll in r["loglik"]]
    np.testing.assert_allclose(flat, flat_again, rtol=1e-5, atol=1e-5)  # batch size does not change scores


def test_fewshot_pool_never_contains_the_query(task):
    pool = la.MultipleChoiceTask(RECORDS[:3], "pool")
    for i in range(len(task)):
        drawn = task.fewshot_indices(i, 2, seed=0, pool=pool)
        assert all(pool[k] != task[i] for k in drawn)
    with pytest.raises(ValueError, match="num_fewshot=6"):
        task.fewshot_indices(0, 6)


def test_left_truncation_matches_brute_force(model, tok, task):
    res = la.evaluate_multiple_choice(model, tok, task, num_fewshot=3, max_length=20, bootstrap_samples=0)
    i = 2
    prompt = task.prompt(i, res.per_item[i]["fewshot"])
    assert len(tok(prompt)["input_ids"]) > 20
    expected = [brute_loglik(model, tok, prompt, " " + c, max_length=20) for c in RECORDS[i]["choices"]]
    np.testing.assert_allclose(res.per_item[i]["loglik"], expected, rtol=1e-5, atol=1e-5)


def test_bootstrap_interval():
    from lowres_adapt.evaluation.downstream import _bootstrap

    assert _bootstrap({"acc": [1.0] * 10}, 500, 0.95, 0) == {
        "level": 0.95, "method": "percentile bootstrap over items, 500 resamples", "acc": [1.0, 1.0]}
    values = [1.0] * 60 + [0.0] * 40
    ci = _bootstrap({"acc": values}, 2000, 0.95, 0)["acc"]
    assert ci == _bootstrap({"acc": values}, 2000, 0.95, 0)["acc"]  # seeded
    # normal approximation: 0.6 +- 1.96 * sqrt(0.24 / 100) = [0.504, 0.696]
    assert ci[0] == pytest.approx(0.504, abs=0.03) and ci[1] == pytest.approx(0.696, abs=0.03)


def test_encode_pair_moves_trailing_space(tok):
    ctx, cont = _encode_pair(tok, "Ҡояш ", "ҡалҡа.")
    assert ctx == tok("Ҡояш")["input_ids"] and ctx + cont == tok("Ҡояш ҡалҡа.")["input_ids"]


def test_bad_input(tmp_path, model, tok, task):
    with pytest.raises(ValueError, match="label must be"):
        MultipleChoiceItem("a", ("b", "c"), 2)
    with pytest.raises(ValueError, match="at least two"):
        la.MultipleChoiceTask([{"context": "a", "choices": ["b"], "label": 0}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "a", "choices": ["b", "c"], "label": 0}\n{"context": "a", "answer": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field\(s\) \['choices', 'label'\]"):
        la.MultipleChoiceTask.from_jsonl(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl' line 1 is not valid JSON"):
        la.MultipleChoiceTask.from_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        la.MultipleChoiceTask.from_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="num_fewshot must be"):
        la.evaluate_multiple_choice(model, tok, task, num_fewshot=-1)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"q": "a", "opts": ["b", "c"], "gold": 1}) + "\n")
    assert la.MultipleChoiceTask.from_jsonl(other, context_field="q", choices_field="opts",
                                            label_field="gold")[0].label == 1


def test_intervals_over_few_items_come_with_a_warning(model, tok, task):
    assert len(task) < 10
    with pytest.warns(UserWarning, match=rf"rest on {len(task)} items \(fewer than 10\)"):
        res = la.evaluate_multiple_choice(model, tok, task, bootstrap_samples=50)
    assert res.to_dict()["warnings"] == res.warnings and len(res.warnings) == 1
    assert la.evaluate_multiple_choice(model, tok, task, bootstrap_samples=0).warnings == []

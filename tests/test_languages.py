"""Language profiles: built-ins, validation, look-up errors, user-defined languages."""

from __future__ import annotations

import copy
import pickle
import unicodedata

import pytest

import lowres_adapt as la


def test_bashkir_profile_has_the_nine_special_letters():
    ba = la.get_language("ba")
    assert ba is la.BASHKIR
    assert (ba.code, ba.iso639_3, ba.name, ba.script) == ("ba", "bak", "Bashkir", "Cyrillic")
    assert set(ba.special_letters) == set("әөүғҡңҙҫһ") and len(ba.special_letters) == 9
    assert set(ba.special_letters_all_cases) == set("әөүғҡңҙҫһӘӨҮҒҠҢҘҪҺ")
    assert ba.reference_languages == ("ru", "en") and ba.confusable_languages == ("tt", "kk")


@pytest.mark.parametrize("key", ["ba", "BA", "bak", "Bashkir", " bashkir "])
def test_lookup_by_code_iso3_and_name(key):
    assert la.get_language(key) is la.BASHKIR


def test_unknown_code_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown language 'ta'.*known: ba, en, kk, ru, tt"):
        la.get_language("ta")
    with pytest.raises(ValueError, match=r"did you mean 'en'"):
        la.get_language("enn")


def test_user_defined_language_normalises_letters_and_round_trips():
    decomposed_yo = unicodedata.normalize("NFD", "ё")
    tt = la.LanguageProfile(code="tt", name="Tatar", special_letters="ӘӨҮҖҢҺ" + decomposed_yo + "ә",
                            reference_languages="ru")
    assert tt.special_letters == "әөүҗңһё"  # lower-cased, NFC, de-duplicated, order kept
    assert tt.reference_languages == ("ru",)
    assert pickle.loads(pickle.dumps(tt)) == tt == copy.deepcopy(tt)
    assert la.LanguageProfile(**tt.to_dict()) == tt
    assert la.get_language(tt) is tt  # a profile passes through


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"code": "", "name": "X"}, "code"),
        ({"code": "t t", "name": "X"}, "code"),
        ({"code": "tt", "name": ""}, "name"),
        ({"code": "tt", "name": "Tatar", "script": "Cyrilic"}, "did you mean 'Cyrillic'"),
        ({"code": "tt", "name": "Tatar", "special_letters": "ә1"}, "letters only"),
        ({"code": "tt", "name": "Tatar", "reference_languages": ("tt",)}, "itself"),
    ],
)
def test_invalid_profiles_fail_with_the_field_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        la.LanguageProfile(**kwargs)


def test_register_language():
    sah = la.LanguageProfile(code="sah", iso639_3="sah", name="Sakha", special_letters="ҕҥөһү")
    la.register_language(sah, overwrite=True)
    try:
        assert la.get_language("Sakha") is sah and "sah" in la.available_languages()
        with pytest.raises(ValueError, match="already registered"):
            la.register_language(la.LanguageProfile(code="sah", name="Other"))
    finally:
        la.languages._REGISTRY.pop("sah")


def test_builtin_profiles_carry_their_sample_text():
    for profile in (la.BASHKIR, la.RUSSIAN, la.ENGLISH):
        docs = profile.sample_documents()
        assert docs == la.sample_corpus(profile.code)

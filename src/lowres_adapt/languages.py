"""Language profiles: what the library needs to know about a language to diagnose, evaluate and
detect drift for it.

A profile is plain data. Bashkir, Russian, English, Tatar and Kazakh are built in; any other language is a
``LanguageProfile`` written in user code::

    >>> import lowres_adapt as la
    >>> tatar = la.LanguageProfile(code="tt", name="Tatar", script="Cyrillic",
    ...                            special_letters="әөүҗңһ", reference_languages=("ru", "en"))
    >>> "Ә" in tatar.special_letters_all_cases
    True
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from importlib import resources

from ._utils import did_you_mean

# Scripts as Unicode names them (the first word of a letter's name); "Other" for every other script.
SCRIPTS = ("Cyrillic", "Latin", "Arabic", "Greek", "Georgian", "Armenian", "Mongolian", "Other")


def _read_sample(code: str) -> str | None:
    """Text of the shipped sample corpus for ``code`` (documents separated by blank lines), if any."""
    try:
        path = resources.files("lowres_adapt").joinpath("resources", "samples", f"{code}.txt")
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - broken installs
        return None


@dataclass(frozen=True)
class LanguageProfile:
    """A language as the library sees it.

    Example::

        >>> import lowres_adapt as la
        >>> kazakh = la.LanguageProfile(code="kk", iso639_3="kaz", name="Kazakh", script="Cyrillic",
        ...                             special_letters="әғқңөұүһі", confusable_languages=("tt", "ba"))
        >>> kazakh.special_letters
        'әғқңөұүһі'
    """

    code: str = field(metadata={"help": "Short code used everywhere in the library, usually ISO 639-1 ('ba')."})
    name: str = field(metadata={"help": "English name of the language ('Bashkir')."})
    script: str = field(default="Cyrillic", metadata={"help": f"Main script; one of {SCRIPTS}."})
    special_letters: str = field(
        default="",
        metadata={"help": "Lower-case letters that distinguish the language from its script's majority "
                  "language (for Bashkir: әөүғҡңҙҫһ). Capitals are derived; both are normalised to NFC."},
    )
    reference_languages: tuple[str, ...] = field(
        default=(), metadata={"help": "Codes of languages a base model likely knows and a generation may "
                              "drift into (Bashkir: ru, en); also used for tokenizer parity."}
    )
    confusable_languages: tuple[str, ...] = field(
        default=(), metadata={"help": "Closely related languages a language-ID model may confuse it with."}
    )
    iso639_3: str | None = field(default=None, metadata={"help": "ISO 639-3 code ('bak'), if known."})
    sample_text: str | None = field(
        default=None, repr=False,
        metadata={"help": "Optional sample text (documents separated by blank lines) used by the n-gram "
                  "language identifier and the offline demo."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip() or any(c.isspace() for c in self.code):
            raise ValueError(f"LanguageProfile.code must be a non-empty code without spaces, got {self.code!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"LanguageProfile.name must be a non-empty string, got {self.name!r}")
        if self.script not in SCRIPTS:
            raise ValueError(
                f"LanguageProfile.script={self.script!r} is not known{did_you_mean(self.script, SCRIPTS)}; "
                f"use one of {SCRIPTS}"
            )
        letters = unicodedata.normalize("NFC", self.special_letters or "").lower()
        letters = "".join(dict.fromkeys(c for c in letters if not c.isspace()))  # dedupe, keep order
        if any(not c.isalpha() for c in letters):
            raise ValueError(f"LanguageProfile.special_letters must be letters only, got {self.special_letters!r}")
        object.__setattr__(self, "special_letters", letters)
        for name in ("reference_languages", "confusable_languages"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if self.code in self.reference_languages:
            raise ValueError(f"LanguageProfile {self.code!r} lists itself among its reference_languages")

    @property
    def special_letters_all_cases(self) -> str:
        """Special letters in lower and upper case, e.g. 'әӘөӨ...'."""
        return "".join(c + c.upper() for c in self.special_letters)

    def sample_documents(self) -> list[str]:
        """The profile's sample text split into documents (blank-line separated); [] if it has none."""
        if not self.sample_text:
            return []
        text = unicodedata.normalize("NFC", self.sample_text)
        return [d.strip() for d in text.replace("\r\n", "\n").split("\n\n") if d.strip()]

    @classmethod
    def from_dict(cls, data: dict) -> LanguageProfile:
        """Returns the profile a dict of its fields describes (lists become tuples); an unknown key raises
        ``ValueError`` with the known ones.

        Example::

            >>> import lowres_adapt as la
            >>> la.LanguageProfile.from_dict({"code": "sah", "name": "Sakha", "special_letters": "ҕҥөүһ",
            ...                               "reference_languages": ["ru"]}).reference_languages
            ('ru',)
        """
        if not isinstance(data, dict):
            raise ValueError(f"a language profile must be a mapping of LanguageProfile fields, got {data!r}")
        known = [f for f in cls.__dataclass_fields__]
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = "".join(did_you_mean(str(k), known) for k in unknown)
            raise ValueError(f"unknown LanguageProfile field(s) {unknown}{hints}; known fields: {', '.join(known)}")
        missing = [k for k in ("code", "name") if k not in data]
        if missing:
            raise ValueError(f"a language profile needs {' and '.join(map(repr, missing))}, e.g. "
                             "{code: sah, name: Sakha, special_letters: ҕҥөүһ, reference_languages: [ru]}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def from_file(cls, path) -> LanguageProfile:
        """Returns the profile written in a YAML or JSON file of ``LanguageProfile`` fields (``code``,
        ``name``, ``script``, ``special_letters``, ``reference_languages``, ...).

        Example::

            >>> import json, tempfile, lowres_adapt as la
            >>> path = tempfile.mktemp(suffix=".json")
            >>> _ = open(path, "w", encoding="utf-8").write(json.dumps({"code": "ky", "name": "Kyrgyz",
            ...                                                         "special_letters": "ңөү"}))
            >>> la.LanguageProfile.from_file(path).name
            'Kyrgyz'
        """
        import json
        import os

        from ._utils import read_text_file

        fix = "write the profile's fields (code, name, script, special_letters, reference_languages) in YAML or JSON"
        text = read_text_file(path, "language file", fix)
        import yaml

        is_json = str(os.fspath(path)).lower().endswith(".json")
        try:
            data = json.loads(text) if is_json else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"language file {str(path)!r} is not valid {'JSON' if is_json else 'YAML'}: {first}"
                             ) from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"language file {str(path)!r}: {e}") from None

    def to_dict(self) -> dict:
        """The profile as a JSON-friendly dict (the sample text is left out)."""
        d = asdict(self)
        d.pop("sample_text")
        d["reference_languages"] = list(self.reference_languages)
        d["confusable_languages"] = list(self.confusable_languages)
        return d


BASHKIR = LanguageProfile(
    code="ba", iso639_3="bak", name="Bashkir", script="Cyrillic", special_letters="әөүғҡңҙҫһ",
    reference_languages=("ru", "en"), confusable_languages=("tt", "kk"), sample_text=_read_sample("ba"),
)
RUSSIAN = LanguageProfile(
    code="ru", iso639_3="rus", name="Russian", script="Cyrillic", special_letters="",
    reference_languages=("en",), confusable_languages=("uk", "be", "bg"), sample_text=_read_sample("ru"),
)
ENGLISH = LanguageProfile(
    code="en", iso639_3="eng", name="English", script="Latin", special_letters="",
    reference_languages=(), confusable_languages=(), sample_text=_read_sample("en"),
)

TATAR = LanguageProfile(
    code="tt", iso639_3="tat", name="Tatar", script="Cyrillic", special_letters="әөүҗңһ",
    reference_languages=("ru", "en"), confusable_languages=("ba", "kk"), sample_text=_read_sample("tt"),
)
KAZAKH = LanguageProfile(
    code="kk", iso639_3="kaz", name="Kazakh", script="Cyrillic", special_letters="әғқңөұүһі",
    reference_languages=("ru", "en"), confusable_languages=("ba", "tt"), sample_text=_read_sample("kk"),
)

_REGISTRY: dict[str, LanguageProfile] = {p.code: p for p in (BASHKIR, RUSSIAN, ENGLISH, TATAR, KAZAKH)}


def register_language(profile: LanguageProfile, *, overwrite: bool = False) -> LanguageProfile:
    """Register ``profile`` so ``get_language(profile.code)`` and config files can name it; returns it.

    Example::

        >>> import lowres_adapt as la
        >>> tt = la.register_language(la.LanguageProfile(code="tt", name="Tatar", special_letters="әөүҗңһ"),
        ...                           overwrite=True)
        >>> la.get_language("tt").name
        'Tatar'
    """
    if not isinstance(profile, LanguageProfile):
        raise TypeError(f"register_language expects a LanguageProfile, got {type(profile).__name__}")
    if profile.code in _REGISTRY and not overwrite and _REGISTRY[profile.code] != profile:
        raise ValueError(f"language {profile.code!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[profile.code] = profile
    return profile


def available_languages() -> list[str]:
    """Codes of the registered language profiles, sorted.

    Example::

        >>> import lowres_adapt as la
        >>> {"ba", "ru", "en"} <= set(la.available_languages())
        True
    """
    return sorted(_REGISTRY)


def get_language(code: str | LanguageProfile) -> LanguageProfile:
    """The registered profile for ``code`` (a profile passes through unchanged).

    Looks up ISO 639-1 codes, ISO 639-3 codes and English names, case-insensitively.

    Example::

        >>> import lowres_adapt as la
        >>> la.get_language("bak") is la.BASHKIR
        True

    Raises ``ValueError`` naming the known codes for an unknown one.
    """
    if isinstance(code, LanguageProfile):
        return code
    key = str(code).strip().lower()
    for profile in _REGISTRY.values():
        if key in (profile.code.lower(), (profile.iso639_3 or "").lower(), profile.name.lower()):
            return profile
    known = available_languages()
    raise ValueError(
        f"unknown language {code!r}{did_you_mean(key, known)}; known: {', '.join(known)}. "
        "Define another with lowres_adapt.LanguageProfile(...) and pass the profile itself, "
        "or call lowres_adapt.register_language(profile)."
    )

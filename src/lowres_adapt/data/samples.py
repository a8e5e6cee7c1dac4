"""What ships with the package for offline demos, docs and tests: sample corpora, prompts and a small
pretrained base model.

- ``sample_corpus(code)`` / ``sample_corpus_path(code)``: short original texts written for this project
  (Bashkir, and the reference languages Russian and English);
- ``sample_prompts(code)``: opening words of Bashkir sentences for generation and drift checks;
- ``sample_model_path(name)``: ``mini-gpt2-ru``, a 5.3 M-parameter GPT-2 pretrained on Russian and English
  that never saw Bashkir (its model card is the folder's ``README.md``).

Specs accepted wherever a ``Study`` reads data: ``"sample:ba"`` (corpus, reference corpus, prompts); and
``"sample:mini-gpt2-ru"`` wherever a model or tokenizer path is taken (``Study``, ``recipe.train``,
``PerplexityEvaluator.evaluate``, ``generate``, ``diagnose_tokenizer``, ``load_tokenizer``, the CLI).

Example::

    >>> import lowres_adapt as la
    >>> len(la.sample_prompts("ba")) >= 20
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .._utils import did_you_mean

SAMPLE_PREFIX = "sample:"
DEFAULT_SAMPLE_MODEL = "mini-gpt2-ru"


def _resource_dir(*parts: str) -> Path:
    return Path(str(resources.files("lowres_adapt").joinpath("resources", *parts)))


def _code(code) -> str:
    from ..languages import LanguageProfile, get_language

    if isinstance(code, LanguageProfile):
        return code.code
    if len(code) > 2:  # 'bak' or 'Bashkir'
        return get_language(code).code
    return code


def _shipped_text_file(folder_name: str, code, what: str) -> Path:
    """``resources/<folder_name>/<code>.txt``, or a ValueError that lists the codes shipped."""
    code = _code(code)
    folder = _resource_dir(folder_name)
    path = folder / f"{code}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.txt"))
        raise ValueError(f"no shipped {what} for {code!r}{did_you_mean(code, known)}; shipped: {known}")
    return path


def sample_corpus_path(code: str = "ba") -> Path:
    """Returns the path of the shipped sample corpus for language ``code`` (a ``.txt`` file).

    Example::

        >>> import lowres_adapt as la
        >>> la.sample_corpus_path("ba").name
        'ba.txt'
    """
    return _shipped_text_file("samples", code, "sample corpus")


def sample_corpus(code: str = "ba") -> list[str]:
    """Returns the documents of the shipped sample corpus for ``code`` ("ba", "ru" or "en").

    The Bashkir sample is original text written for this project (several topics, every special letter);
    it runs the offline demo and the tests.

    Example::

        >>> import lowres_adapt as la
        >>> docs = la.sample_corpus("ba")
        >>> any("ҙ" in d for d in docs)
        True
    """
    from .corpus import load_corpus

    return load_corpus(sample_corpus_path(code))


def sample_prompts(code: str = "ba") -> list[str]:
    """Returns the shipped generation prompts for ``code``: the opening words of sentences, one per prompt.

    The Bashkir prompts (24, written for this project, not taken from any test set) cover everyday life,
    nature, school, news and culture, and use every special letter. ``Study(prompts="sample:ba")`` reads
    them.

    Example::

        >>> import lowres_adapt as la
        >>> la.sample_prompts("ba")[0]
        'Башҡортостандың иң матур урындарының береһе'
    """
    path = _shipped_text_file("prompts", code, "prompts")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def resolve_sample(source):
    """``"sample:<name>"`` -> the shipped model's folder (as a string); anything else unchanged. Every
    function that takes a model or tokenizer path calls it, so the spec works wherever a path does.

    Example::

        >>> from lowres_adapt.data import resolve_sample
        >>> resolve_sample("sample:mini-gpt2-ru").endswith("mini-gpt2-ru"), resolve_sample("gpt2")
        (True, 'gpt2')
    """
    if isinstance(source, str) and source.startswith(SAMPLE_PREFIX):
        return str(sample_model_path(source[len(SAMPLE_PREFIX):]))
    return source


def sample_model_path(name: str = DEFAULT_SAMPLE_MODEL) -> Path:
    """Returns the folder of a small pretrained model shipped with the package, loadable with
    ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

    ``"mini-gpt2-ru"`` (the only one so far): GPT-2 architecture, 5.3 M parameters, 8k byte-level BPE,
    pretrained on Russian news and some English, never on Bashkir; stored in float16, loaded in float32.
    Its model card is ``README.md`` in that folder. ``Study(models=["sample:mini-gpt2-ru"])`` uses it.

    Example::

        >>> import lowres_adapt as la
        >>> path = la.sample_model_path()
        >>> path.name, (path / "config.json").is_file()
        ('mini-gpt2-ru', True)
    """
    folder = _resource_dir("models")
    path = folder / name
    if not (path / "config.json").is_file():
        known = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
        raise ValueError(f"no shipped model {name!r}{did_you_mean(name, known)}; shipped: {known}")
    return path

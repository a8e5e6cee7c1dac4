"""The docs run: every Python code block of README.md and docs/*.md is a test, collected by Sybil.

The blocks of one page share one namespace, in order (Sybil's document namespace). A page's fragments
may use the names a reader has in hand at that point, which ``_DocsStandIn.setup`` puts in the
namespace before the page's first block:

``model``, ``tokenizer``/``tok`` (the shipped ``sample:mini-gpt2-ru``), ``model_path`` (its folder), ``texts``/``train_docs``/``valid_docs``/``docs`` (the shipped Bashkir
sample, split by document), ``prompts``, ``tatar_texts``, ``kyrgyz_texts``, ``tok_a``/``tok_b``,
``ru_pairs``/``en_pairs`` (a few ba-ru / ba-en sentence pairs).

The Hub is unreachable here, so the hub ids the docs name (``mistralai/Mistral-7B-v0.1``,
``meta-llama/Llama-3.2-1B``, ``distilgpt2``) resolve, offline, to tiny checkpoints of the same
architecture written into a temporary Hugging Face cache: the library's own loading path runs, through
``from_pretrained``, on a stand-in. Each page runs in a fresh temporary folder holding the files its
blocks open (``my_corpus.jsonl``, ``corpus-train.jsonl``, ``instructions-ba.jsonl``, ...; the
published tokenizer files of mistral-common and openai-whisper under ``path/to/``).

A block that cannot run here is preceded by ``<!-- skip: next "the reason" -->``; tests/test_docs.py
holds their number to a handful.
"""

from __future__ import annotations

import doctest
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent

# a hub id the docs name -> (architecture, tokenizer kind) of the tiny stand-in written under that id
_HUB_STAND_INS = {
    "mistralai/Mistral-7B-v0.1": ("mistral", "llama_bpe"),
    "meta-llama/Llama-3.2-1B": ("llama", "llama_bpe"),
    "distilgpt2": ("gpt2", "byte_bpe"),
}
# (ba, ru, en): everyday sentences, enough for the parity numbers to be computed
_PARALLEL = [
    ("Сәләм, дуҫтар!", "Привет, друзья!", "Hello, friends!"),
    ("Мин мәктәпкә барам.", "Я иду в школу.", "I am going to school."),
    ("Бөгөн һауа бик матур.", "Сегодня погода очень хорошая.", "Today the weather is very nice."),
]
_KYRGYZ = ["Бүгүн аба ырайы абдан жакшы.", "Мен мектепке барам.", "Биздин айылда көп үйлөр бар."]


def _tiny_config(arch: str, tokenizer):
    import transformers

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if arch == "gpt2":
        return transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2,
                                       n_positions=1024, **ids)
    # the real models' contexts (rotary positions: no weights grow with it)
    cls, context = {"mistral": (transformers.MistralConfig, 32768), "llama": (transformers.LlamaConfig, 131072)}[arch]
    return cls(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
               tie_word_embeddings=False, **ids)


@functools.lru_cache(maxsize=1)
def _hub_cache() -> Path:
    """A Hugging Face cache (offline) holding a tiny checkpoint under each hub id in ``_HUB_STAND_INS``."""
    import torch
    from transformers import AutoModelForCausalLM

    import lowres_adapt as la

    cache = Path(tempfile.mkdtemp(prefix="lowres-adapt-docs-hub-"))
    texts = la.sample_corpus("ba") + la.sample_corpus("ru")
    commit = "0" * 40
    for repo_id, (arch, kind) in _HUB_STAND_INS.items():
        tokenizer = la.train_tokenizer(texts, vocab_size=400, kind=kind, model_max_length=1024)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_tiny_config(arch, tokenizer))
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / commit
        model.save_pretrained(snapshot)
        tokenizer.save_pretrained(snapshot)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
    return cache


def _write_page_files(folder: Path) -> None:
    """The files the docs' blocks open, written into the page's working folder."""
    import lowres_adapt as la

    docs = la.sample_corpus("ba")

    def jsonl(name: str, records) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")

    for name, part in [("my_corpus.jsonl", docs), ("corpus.jsonl", docs), ("corpus-train.jsonl", docs[:-5]),
                       ("corpus-valid.jsonl", docs[-5:])]:
        jsonl(name, [{"text": d} for d in part])
    (folder / "tatar_sample.txt").write_text("\n\n".join(la.sample_corpus("tt")), encoding="utf-8")
    (folder / "chuvash_sample.txt").write_text("Паян ҫанталӑк лайӑх. Эпӗ шкула каятӑп.", encoding="utf-8")
    jsonl("instructions-ba.jsonl", [{"prompt": f"Дауам ит: {p}", "response": d[:200]}
                                    for p, d in zip(la.sample_prompts("ba")[:8], docs[:8], strict=True)])
    jsonl("sentiment-ba.jsonl", [{"context": ba, "choices": ["ыңғай", "кире"], "label": i % 2}
                                 for i, (ba, _, _) in enumerate(_PARALLEL * 3)])
    jsonl("parallel-ba-ru-en.jsonl", [{"ba": ba, "ru": ru, "en": en} for ba, ru, en in _PARALLEL])
    # published tokenizer files shipped inside the dev extra's packages (mistral-common, openai-whisper)
    to = folder / "path" / "to"
    to.mkdir(parents=True, exist_ok=True)
    for package, parts, name in [("mistral_common", ("data", "tokenizer.model.v1"), "tokenizer.model"),
                                 ("mistral_common", ("data", "tekken_240911.json"), "tekken.json"),
                                 ("whisper", ("assets", "gpt2.tiktoken"), "gpt2.tiktoken")]:
        try:
            module = __import__(package)
        except ImportError:
            continue
        source = Path(os.path.dirname(module.__file__), *parts)
        if source.exists():
            shutil.copy(source, to / name)
    la.load_tokenizer("sample:mini-gpt2-ru").backend_tokenizer.save(str(to / "tokenizer.json"))


class _DocsStandIn:
    """Per page: a fresh working folder, the offline stand-in Hub, and the names a page may assume."""

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []
        self._cwd: str | None = None

    def setup(self, namespace: dict) -> None:
        import huggingface_hub.constants as hub

        import lowres_adapt as la

        cache = _hub_cache()
        for obj, name, value in [(hub, "HF_HUB_CACHE", str(cache)), (hub, "HF_HUB_OFFLINE", True)]:
            self._saved.append((obj, name, getattr(obj, name)))
            setattr(obj, name, value)
        self._cwd = os.getcwd()
        folder = Path(tempfile.mkdtemp(prefix="lowres-adapt-docs-page-"))
        _write_page_files(folder)
        os.chdir(folder)
        model, tokenizer = _load_sample()
        splits = la.split_documents(la.sample_corpus("ba"), valid=0.1, test=0.1, seed=0)
        namespace.update(
            model=model, tokenizer=tokenizer, tok=tokenizer, model_path=str(la.sample_model_path()),
            texts=splits["test"], train_docs=splits["train"], valid_docs=splits["valid"],
            train_texts=splits["train"], eval_texts=splits["valid"],
            docs=splits["train"], valid=splits["valid"], prompts=la.sample_prompts("ba")[:4],
            tatar_texts=la.sample_corpus("tt"), kyrgyz_texts=list(_KYRGYZ),
            tok_a=tokenizer, tok_b=la.load_tokenizer("mistralai/Mistral-7B-v0.1"),
            ru_pairs=[(ba, ru) for ba, ru, _ in _PARALLEL], en_pairs=[(ba, en) for ba, _, en in _PARALLEL],
        )

    def teardown(self, namespace: dict) -> None:
        while self._saved:
            obj, name, value = self._saved.pop()
            setattr(obj, name, value)
        if self._cwd is not None:
            os.chdir(self._cwd)
        namespace.clear()


def _load_sample():
    from transformers import AutoModelForCausalLM

    import lowres_adapt as la

    path = la.sample_model_path()
    return AutoModelForCausalLM.from_pretrained(path), la.load_tokenizer(path)


_stand_in = _DocsStandIn()
pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    setup=_stand_in.setup,
    teardown=_stand_in.teardown,
).pytest()

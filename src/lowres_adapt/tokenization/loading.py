"""Load a published tokenizer from the files it ships as, converted by the ecosystem's own converters and
checked against the original library.

``load_tokenizer(source)`` takes a hub id or a folder (``AutoTokenizer``), a ``tokenizer.json``, a
SentencePiece ``.model`` (Llama 2, Mistral-7B v0.1), a tiktoken ranks file (``.tiktoken``: GPT-2, Whisper)
or a Mistral ``tekken*.json``, and returns a fast ``transformers`` tokenizer. The conversions are the
ones ``transformers`` itself uses when it loads such files (``TokenizersBackend.convert_to_native_format``
for SentencePiece and tekken, ``TikTokenConverter`` for ranks files); none is written here.

Every result is checked against its source before it is returned: the same vocabulary size, and the same
token ids on a probe text in Bashkir, Russian and English (plus any ``probe`` texts given), compared with
``sentencepiece.SentencePieceProcessor``, ``tiktoken.Encoding``, ``mistral_common``'s ``Tekkenizer`` or the
raw ``tokenizers.Tokenizer`` of a ``tokenizer.json``. A disagreement raises
:class:`~lowres_adapt.errors.TokenizerConversionError` naming both sides and the fix, instead of handing
on a tokenizer that silently cuts text differently from the model's own (on transformers 5,
``LlamaTokenizerFast(vocab_file="tokenizer.model")`` returns a 3-token vocabulary without a word).

Example::

    >>> import tempfile, lowres_adapt as la
    >>> folder = tempfile.mkdtemp()
    >>> _ = la.train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300).save_pretrained(folder)
    >>> tok = la.load_tokenizer(folder + "/tokenizer.json")
    >>> len(tok), tok.tokenize("the cat")
    (269, ['the', 'Ġcat'])
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TokenizerConversionError

#: Below this many entries a vocabulary cannot be a published tokenizer's (it could not even hold the 95
#: printable ASCII characters); it is what a wrong loading path gives (3 entries: <unk>, <s>, </s>).
MIN_VOCAB_SIZE = 100

#: The probe text every loaded tokenizer must cut exactly as its source does: Bashkir with all nine
#: special letters (both cases), Russian, English, digits, a contraction, runs of spaces, a tab, newlines.
PROBE = (
    "Башҡортостан Республикаһы — Рәсәй Федерацияһы составындағы республика. Һаумыһығыҙ, дуҫтар! "
    "Ҡар яуа, Ғаилә менән Өфөлә ял итәбеҙ; Үҙәк урамда ҫыуыҡ, ә Ңә Ҙур Ҫ.\n"
    "Привет, мир! Москва — столица России, 2024 год.\n"
    "Hello world, it's 1,234.5 tokens: don't panic.\n  two  spaces\tand a tab  "
)

#: Pre-tokenizer regexes of known tiktoken ranks files: the regex is not stored in a ``.tiktoken`` file, and
#: transformers' ``TikTokenConverter`` defaults to a cl100k-style one that cuts GPT-2 text differently.
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# cl100k's own pat_str uses possessive quantifiers ("\p{N}{1,3}+"), which the Oniguruma engine of
# `tokenizers` reads differently (as "{1,3}" repeated: "2024" -> "20" "24" instead of "202" "4"); this is
# the equivalent form without them, the one transformers' TikTokenConverter defaults to.
_CL100K_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                   r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
TIKTOKEN_PATTERNS = {
    "gpt2": _GPT2_PATTERN, "r50k_base": _GPT2_PATTERN, "p50k_base": _GPT2_PATTERN,
    "multilingual": _GPT2_PATTERN,  # Whisper's multilingual ranks use GPT-2's regex (whisper/tokenizer.py)
    "cl100k_base": _CL100K_PATTERN,
}

KINDS = ("auto", "pretrained", "tokenizer.json", "sentencepiece", "tiktoken", "tekken")


@dataclass
class _Reference:
    """The original library's view of the source: its name, vocabulary size, ids of a text, piece of an id."""

    label: str
    size: int
    encode: Callable[[str], list[int]]
    piece: Callable[[int], str]


def load_tokenizer(
    source: str | os.PathLike,
    *,
    kind: str = "auto",
    pattern: str | None = None,
    special_tokens: Sequence[str] | None = None,
    probe: str | Sequence[str] | None = None,
) -> Any:
    """Returns a fast ``transformers`` tokenizer (``PreTrainedTokenizerFast``) for ``source``, checked
    against it (same vocabulary size, same ids on :data:`PROBE` and on ``probe``).

    ``source``: a hub id or folder (``AutoTokenizer.from_pretrained``), a ``tokenizer.json``, a
    SentencePiece model (``*.model``, also ``tokenizer.model.v1``), a tiktoken ranks file (``*.tiktoken``)
    or a Mistral ``tekken*.json``. ``kind`` forces one of :data:`KINDS` instead of guessing from the name.
    For a ranks file, ``pattern`` is the pre-tokenizer regex (default: known for ``gpt2``, ``r50k_base``,
    ``p50k_base``, Whisper's ``multilingual`` and ``cl100k_base`` by the file's stem; a name from that
    list also works) and ``special_tokens`` the tokens appended after the ranks (default
    ``["<|endoftext|>"]``, GPT-2's id 50256). Raises ``FileNotFoundError`` for a missing path,
    ``ValueError`` for an unknown kind or a ranks file without a known regex, and
    :class:`~lowres_adapt.errors.TokenizerConversionError` when the result disagrees with its source.

    Example::

        >>> import tempfile, lowres_adapt as la
        >>> folder = tempfile.mkdtemp()
        >>> _ = la.train_tokenizer(["һаумыһығыҙ дуҫтар"] * 20, vocab_size=300).save_pretrained(folder)
        >>> tok = la.load_tokenizer(folder, probe="дуҫтар")
        >>> tok.decode(tok("һаумыһығыҙ")["input_ids"])
        'һаумыһығыҙ'
        >>> la.load_tokenizer(folder + "/ranks.bin")
        Traceback (most recent call last):
        ...
        FileNotFoundError: load_tokenizer: no file or folder '...ranks.bin' (and it does not look like a hub id ...
    """
    if kind not in KINDS:
        raise ValueError(f"load_tokenizer: kind={kind!r} is not one of {KINDS}")
    probes = [PROBE] + ([probe] if isinstance(probe, str) else list(probe or []))
    if not all(isinstance(p, str) for p in probes):
        raise ValueError("load_tokenizer: probe must be a string or a list of strings")
    from ..data import resolve_sample

    source = resolve_sample(source)
    path = Path(source)
    if kind == "auto":
        kind = _guess_kind(path, source)
    if kind != "pretrained" and not path.is_file():
        raise FileNotFoundError(f"load_tokenizer: no file {str(path)!r} for kind={kind!r}")
    if kind == "pretrained":
        tok, ref = _from_pretrained(source)
    elif kind == "tokenizer.json":
        tok, ref = _from_tokenizer_json(path)
    elif kind == "sentencepiece":
        tok, ref = _from_sentencepiece(path)
    elif kind == "tiktoken":
        tok, ref = _from_tiktoken(path, pattern, special_tokens)
    else:
        tok, ref = _from_tekken(path)
    tok.name_or_path = str(source)
    check_tokenizer(tok, source, ref, probes)
    return tok


_FILE_SUFFIXES = (".json", ".model", ".tiktoken", ".txt", ".jsonl", ".vocab", ".bin", ".safetensors")


def _guess_kind(path: Path, source: Any) -> str:
    if path.is_dir():
        return "pretrained"
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".tiktoken"):
            return "tiktoken"
        if "tekken" in name and name.endswith(".json"):  # transformers' is_tekken_vocab_filename rule
            return "tekken"
        if name.endswith(".json"):
            return "tokenizer.json"
        if ".model" in path.suffixes:
            return "sentencepiece"
        raise ValueError(
            f"load_tokenizer: cannot tell what kind of tokenizer file {str(path)!r} is from its name; pass kind= one "
            f"of {KINDS[1:]} (a SentencePiece model ends in .model, a tiktoken ranks file in .tiktoken)")
    text = str(source)
    # a hub id is 'name' or 'owner/name' and may hold dots ('mistralai/Mistral-7B-v0.1', 'Qwen/Qwen2.5-7B');
    # a missing tokenizer *file* is named by its suffix
    if (os.sep in text.strip("/").replace("/", "", 1) or text.startswith((".", "~"))
            or Path(text).suffix.lower() in _FILE_SUFFIXES):
        raise FileNotFoundError(
            f"load_tokenizer: no file or folder {text!r} (and it does not look like a hub id 'owner/name'); "
            "check the path")
    return "pretrained"  # a hub id


# ---------------------------------------------------------------------------------------- the loaders
def _from_pretrained(source: Any) -> tuple[Any, _Reference | None]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source))
    except OSError as e:
        raise FileNotFoundError(
            f"load_tokenizer: {str(source)!r} is neither a local folder nor a hub id found online or in the "
            f"cache ({e}); for a single file pass its path") from e
    if getattr(tok, "backend_tokenizer", None) is None:
        raise TokenizerConversionError(
            f"load_tokenizer: AutoTokenizer gave a slow {type(tok).__name__} for {str(source)!r}; the diagnostics "
            "need a fast (Rust) tokenizer: pass the folder's tokenizer.json or tokenizer.model file instead")
    files = _local_files(source)
    if "tokenizer.json" in files:
        return tok, _tokenizer_json_reference(files["tokenizer.json"])
    if "tokenizer.model" in files:
        return tok, _sentencepiece_reference(files["tokenizer.model"])
    if "tekken.json" in files:
        return tok, _tekken_reference(files["tekken.json"])
    return tok, None  # nothing to compare with: only the sanity checks run


def _local_files(source: Any) -> dict[str, Path]:
    """The folder's (or the hub cache's) tokenizer files that a reference can be built from."""
    names = ("tokenizer.json", "tokenizer.model", "tekken.json")
    if Path(source).is_dir():
        return {n: Path(source) / n for n in names if (Path(source) / n).is_file()}
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return {}
    found = {n: try_to_load_from_cache(str(source), n) for n in names}
    return {n: Path(p) for n, p in found.items() if isinstance(p, str)}


def _from_tokenizer_json(path: Path) -> tuple[Any, _Reference]:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(path)), _tokenizer_json_reference(path)


def _tokenizer_json_reference(path: Path) -> _Reference:
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(path))
    return _Reference(f"tokenizers.Tokenizer.from_file({path.name!r})", raw.get_vocab_size(with_added_tokens=True),
                      lambda text: raw.encode(text, add_special_tokens=False).ids, lambda i: raw.id_to_token(i) or "")


def _from_sentencepiece(path: Path) -> tuple[Any, _Reference]:
    ref = _sentencepiece_reference(path)
    from transformers import TokenizersBackend

    # transformers picks its SentencePiece conversion by the file name ("*.model"): a name like
    # "tokenizer.model.v1" is read as a plain vocabulary file and gives an empty tokenizer, so copy it.
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = path
        if path.suffix != ".model":
            vocab_file = Path(tmp) / "tokenizer.model"
            shutil.copyfile(path, vocab_file)
        kwargs = TokenizersBackend.convert_to_native_format(vocab_file=str(vocab_file))
        if kwargs.get("tokenizer_object") is None:
            raise TokenizerConversionError(
                f"load_tokenizer: transformers could not convert the SentencePiece model {str(path)!r} "
                "(no tokenizer built); is it a SentencePiece .model file? Pass kind= for another kind of file")
        kwargs["vocab_file"] = str(path)
        tok = TokenizersBackend(**kwargs)
    return tok, ref


def _sentencepiece_reference(path: Path) -> _Reference:
    try:
        import sentencepiece
    except ImportError as e:
        raise ImportError("load_tokenizer: reading a SentencePiece .model needs the sentencepiece package: "
                          "pip install sentencepiece protobuf") from e
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    return _Reference(f"sentencepiece {sentencepiece.__version__}", sp.get_piece_size(),
                      lambda text: list(sp.encode(text)), sp.id_to_piece)


def _from_tiktoken(path: Path, pattern: str | None, special_tokens: Sequence[str] | None) -> tuple[Any, _Reference]:
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError as e:
        raise ImportError("load_tokenizer: reading a .tiktoken ranks file needs the tiktoken package: "
                          "pip install tiktoken") from e
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    pattern = TIKTOKEN_PATTERNS.get(pattern or path.stem, pattern)
    if pattern is None:
        raise ValueError(
            f"load_tokenizer: a .tiktoken file stores no pre-tokenizer regex, and {path.name!r} is not one of the "
            f"known files {sorted(TIKTOKEN_PATTERNS)}; pass pattern= the regex of its tiktoken.Encoding "
            "(its pat_str) or one of those names")
    specials = ["<|endoftext|>"] if special_tokens is None else list(special_tokens)
    ranks = load_tiktoken_bpe(str(path))
    enc = tiktoken.Encoding(name=path.stem, pat_str=pattern, mergeable_ranks=ranks,
                            special_tokens={t: len(ranks) + i for i, t in enumerate(specials)})
    backend = TikTokenConverter(vocab_file=str(path), pattern=pattern, extra_special_tokens=specials).converted()
    named = {"bos_token": specials[0], "eos_token": specials[0]} if specials else {}
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **named)
    ref = _Reference(f"tiktoken {tiktoken.__version__}", enc.n_vocab, enc.encode_ordinary,
                     lambda i: enc.decode_single_token_bytes(i).decode("utf-8", "backslashreplace"))
    return tok, ref


def _from_tekken(path: Path) -> tuple[Any, _Reference]:
    ref = _tekken_reference(path)
    from transformers import TokenizersBackend

    kwargs = TokenizersBackend.convert_to_native_format(vocab_file=str(path))  # transformers' MistralConverter
    if kwargs.get("tokenizer_object") is None:
        raise TokenizerConversionError(f"load_tokenizer: transformers could not convert the tekken file {str(path)!r}")
    vocab = kwargs["tokenizer_object"].get_vocab(with_added_tokens=True)
    named = {k: t for k, t in (("unk_token", "<unk>"), ("bos_token", "<s>"), ("eos_token", "</s>")) if t in vocab}
    return TokenizersBackend(**kwargs, **named), ref


def _tekken_reference(path: Path) -> _Reference:
    try:
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    except ImportError as e:
        raise ImportError("load_tokenizer: reading a tekken .json file needs the mistral-common package: "
                          "pip install mistral-common") from e
    import mistral_common

    tk = Tekkenizer.from_file(str(path))
    return _Reference(f"mistral_common {mistral_common.__version__} Tekkenizer", tk.n_words,
                      lambda text: list(tk.encode(text, bos=False, eos=False)), tk.id_to_piece)


# ---------------------------------------------------------------------------------------- the check
def check_tokenizer(tok: Any, source: Any, ref: _Reference | None, probes: Sequence[str] = (PROBE,)) -> None:
    """Raises :class:`TokenizerConversionError` unless ``tok`` is big enough to be real, cuts every probe
    into tokens, and (with a reference) has its vocabulary size and gives its ids on every probe."""
    backend = tok.backend_tokenizer
    size = backend.get_vocab_size(with_added_tokens=True)
    if size < MIN_VOCAB_SIZE:
        raise TokenizerConversionError(
            f"load_tokenizer({str(source)!r}): the tokenizer has {size} vocabulary entries, fewer than "
            f"{MIN_VOCAB_SIZE}: that is no published tokenizer (a wrong loading path, such as "
            "LlamaTokenizerFast(vocab_file=...) on transformers 5, gives 3); pass the file itself to la.load_tokenizer")
    ids = backend.encode(probes[0], add_special_tokens=False).ids
    if not ids:
        raise TokenizerConversionError(
            f"load_tokenizer({str(source)!r}): the tokenizer cuts the probe text into no tokens at all, so it "
            "cannot be the model's tokenizer; pass the tokenizer's own file (tokenizer.json, tokenizer.model, "
            "*.tiktoken, tekken.json)")
    if ref is None:
        return
    fix = ("the conversion does not reproduce the original: check kind= (and pattern= for a .tiktoken file), "
           "or convert with the model's own library and save a tokenizer.json")
    if size != ref.size:
        raise TokenizerConversionError(
            f"load_tokenizer({str(source)!r}): the converted tokenizer has {size:,} vocabulary entries, "
            f"{ref.label} reads {ref.size:,} from the same file; {fix}")
    for text in probes:
        got = backend.encode(text, add_special_tokens=False).ids
        want = ref.encode(text)
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
            lo = max(at - 3, 0)
            mine = [backend.id_to_token(i) for i in got[lo:at + 5]]
            theirs = [ref.piece(i) for i in want[lo:at + 5]]
            raise TokenizerConversionError(
                f"load_tokenizer({str(source)!r}): on the probe text {text[:40]!r}... the converted tokenizer gives "
                f"{len(got)} tokens and {ref.label} {len(want)}; they part at token {at}: converted {mine} "
                f"(ids {got[lo:at + 5]}) vs original {theirs} (ids {want[lo:at + 5]}); {fix}")

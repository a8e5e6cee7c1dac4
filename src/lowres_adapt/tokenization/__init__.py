"""Tokenization: loading published tokenizers (SentencePiece, tekken, tiktoken ranks, ``tokenizer.json``),
diagnosing how well one fits a language before training, and extending its vocabulary.

Token perplexities of different tokenizers do not compare; the diagnostics say why a tokenizer will
struggle (fertility, byte fallback, letters no token holds) so the warning comes before the training.

This concept imports only ``data``, ``languages``, ``errors`` and ``_utils``.

Example::

    >>> from lowres_adapt import tokenization
    >>> tok = tokenization.load_tokenizer("sample:mini-gpt2-ru")
    >>> tokenization.diagnose_tokenizer(tok, ["Беҙ бында йәшәйбеҙ."]).to_dict()["roundtrip_ok"]
    True
"""

from . import vocab
from .diagnostics import (
    DiagnosticThresholds,
    TokenizerComparison,
    TokenizerReport,
    compare_tokenizers,
    diagnose_tokenizer,
)
from .loading import MIN_VOCAB_SIZE, PROBE, check_tokenizer, load_tokenizer
from .vocab import (
    TokenCandidate,
    VocabularyExtension,
    check_init,
    extend_vocabulary,
    init_new_embeddings,
    new_token_peft_kwargs,
    select_new_tokens,
)

__all__ = [
    "MIN_VOCAB_SIZE", "PROBE", "DiagnosticThresholds", "TokenCandidate", "TokenizerComparison", "TokenizerReport",
    "VocabularyExtension", "check_init", "check_tokenizer", "compare_tokenizers", "diagnose_tokenizer", "extend_vocabulary",
    "init_new_embeddings", "load_tokenizer", "new_token_peft_kwargs", "select_new_tokens", "vocab",
]

"""Data: corpus input, document-level splits, the shipped samples, and packing into training blocks.

``load_corpus`` reads plain text, JSON Lines, a folder of those or a Hugging Face dataset;
``split_documents`` cuts documents into train/valid/test deterministically and independently of any
tokenizer; ``pack_documents`` and ``pack_texts`` join tokenized documents into fixed-size blocks, and
``pack_corpus`` packs a list or a streamed corpus source once per tokenizer into a cache of Arrow files. The
``sample:`` spec (``resolve_sample``) names what ships inside the package.

This concept imports nothing above it (only ``languages``, ``errors`` and ``_utils``).

Example::

    >>> from lowres_adapt import data
    >>> splits = data.split_documents(data.sample_corpus("ba"), valid=0.1, test=0.1, seed=0)
    >>> sorted(splits)
    ['test', 'train', 'valid']
"""

from . import packing
from .blocks import pack_corpus, tokenizer_fingerprint
from .corpus import (
    CorpusSplit,
    has_splits,
    iter_corpus,
    iter_jsonl_records,
    load_corpus,
    load_splits,
    split_documents,
    split_fingerprint,
    split_source,
)
from .packing import PACKINGS, as_dataset, document_start_id, ignored_labels, pack_documents, pack_texts
from .samples import (
    SAMPLE_PREFIX,
    resolve_sample,
    sample_corpus,
    sample_corpus_path,
    sample_model_path,
    sample_prompts,
)

__all__ = [
    "PACKINGS", "SAMPLE_PREFIX", "CorpusSplit", "as_dataset", "document_start_id", "has_splits", "ignored_labels",
    "iter_corpus", "iter_jsonl_records", "load_corpus", "load_splits", "pack_corpus", "pack_documents", "pack_texts",
    "packing", "resolve_sample", "sample_corpus", "sample_corpus_path", "sample_model_path", "sample_prompts",
    "split_documents", "split_fingerprint", "split_source", "tokenizer_fingerprint",
]

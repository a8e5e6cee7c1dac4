"""The evaluators at 7B scale, on CPU: the peak memory of scoring stays bounded whatever the context and
the vocabulary (token-budget batches, the output layer reduced a chunk of positions at a time), and the
numbers equal a brute-force log-softmax over the full logits."""

from __future__ import annotations

import pytest
import torch
import transformers

from lowres_adapt.evaluation import _common
from lowres_adapt.evaluation._windows import score_documents
from lowres_adapt.recipes._step_memory import StepMemory


def _tiny(kind: str, vocab: int = 500):
    torch.manual_seed(0)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=vocab, n_positions=1024)
    elif kind == "gemma2":  # final_logit_softcapping: the logits are not head(hidden) alone
        cfg = transformers.Gemma2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=vocab,
                                        final_logit_softcapping=3.0)
    else:
        cfg = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=1, num_key_value_heads=1, vocab_size=vocab,
                                       max_position_embeddings=4096)
    return transformers.AutoModelForCausalLM.from_config(cfg).eval()


def _brute_force(model, input_ids, mask, targets):
    logp = torch.log_softmax(model(input_ids=input_ids, attention_mask=mask).logits.double(), dim=-1)
    nll = torch.zeros(targets.shape, dtype=torch.float64)
    for b, p in (targets != -100).nonzero().tolist():
        nll[b, p] = -logp[b, p, targets[b, p]]
    return nll


def _batch(vocab: int, widths=(12, 9), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros((len(widths), max(widths)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    targets = torch.full_like(ids, -100)
    for row, n in enumerate(widths):
        ids[row, :n] = torch.randint(0, vocab, (n,), generator=g)
        mask[row, :n] = 1
        targets[row, 2:n] = torch.randint(0, vocab, (n - 2,), generator=g)  # the first two: context only
    return ids, mask, targets


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma2"])
def test_chunked_scoring_equals_a_full_log_softmax(kind, monkeypatch):
    model = _tiny(kind)
    monkeypatch.setattr(_common, "LOGIT_CHUNK_ELEMENTS", 3 * 500)  # 3 positions a chunk: many chunks
    ids, mask, targets = _batch(500)
    with torch.inference_mode():
        got = _common.token_nll(model, ids, mask, targets)
        want = _brute_force(model, ids, mask, targets)
    assert _common._HEAD_SPLIT_OK[model] is True
    assert torch.allclose(got, want, atol=1e-5)
    assert (got[targets == -100] == 0).all()


def test_a_model_whose_logits_are_not_its_head_is_scored_through_its_forward(monkeypatch):
    model = _tiny("llama")
    forward = model.forward

    def scaled(*a, **k):  # logits the config does not describe: the split would be wrong
        out = forward(*a, **k)
        out.logits = out.logits * 2.0
        return out

    monkeypatch.setattr(model, "forward", scaled)
    monkeypatch.setattr(_common, "LOGIT_CHUNK_ELEMENTS", 4 * 500)
    ids, mask, targets = _batch(500)
    with torch.inference_mode():
        got = _common.token_nll(model, ids, mask, targets)
        want = _brute_force(model, ids, mask, targets)
    assert _common._HEAD_SPLIT_OK[model] is False
    assert torch.allclose(got, want, atol=1e-5)


def test_scoring_peak_stays_bounded_at_a_large_vocabulary_and_long_windows(monkeypatch):
    """8 windows of 1,024 tokens at a 32,000-token vocabulary: full fp32 logits would be 1.05 GB (plus the
    model's own copy); scored in 4 MiB chunks the whole pass peaks near 13 MB above the model."""
    vocab, width, n_docs = 32_000, 1024, 8
    model = _tiny("llama", vocab=vocab)
    monkeypatch.setattr(_common, "LOGIT_CHUNK_ELEMENTS", 1 << 20)
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(0, vocab, (width,), generator=g).tolist() for _ in range(n_docs)]
    full_logits_bytes = n_docs * width * vocab * 4
    with torch.inference_mode(), StepMemory(model, device="cpu") as mem:
        nll = score_documents(model, docs, 0, width, None, batch_size=8, max_batch_tokens=8 * width)
    extra = mem.peak - mem.baseline
    print(f"scoring peak above the model: {extra / 1e6:.1f} MB; full fp32 logits: {full_logits_bytes / 1e6:.0f} MB")
    assert extra < full_logits_bytes / 10
    # a second method on one document: the brute-force log-softmax of its window
    ids = torch.tensor([[0, *docs[0][:-1]]])
    targets = torch.tensor([docs[0]])
    with torch.inference_mode():
        want = float(_brute_force(model, ids, torch.ones_like(ids), targets).sum())
    assert nll[0] == pytest.approx(want, rel=1e-6)


def test_batches_respect_the_token_budget(monkeypatch):
    model = _tiny("gpt2")
    shapes = []
    real = _common.token_nll

    def spy(model, input_ids, *a, **k):
        shapes.append(tuple(input_ids.shape))
        return real(model, input_ids, *a, **k)

    monkeypatch.setattr("lowres_adapt.evaluation._windows.token_nll", spy)
    docs = [list(range(1, 60)), list(range(2, 40)), list(range(3, 20)), list(range(4, 15))]
    with torch.inference_mode():
        budget = score_documents(model, docs, 0, 64, None, batch_size=8, max_batch_tokens=64)
        one_pass = score_documents(model, docs, 0, 64, None, batch_size=8)
    # windows of 59, 38, 17 and 11 tokens, longest first: 64 tokens a pass fits one, one, then two
    assert shapes == [(1, 59), (1, 38), (2, 17), (4, 59)]  # the last: no budget, all four in one pass
    assert budget == pytest.approx(one_pass, rel=1e-6)  # fp32 sums in another batch order: same numbers

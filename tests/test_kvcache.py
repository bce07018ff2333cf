"""course_utils.kvcache: the cache changes nothing but the cost.

References: the model run on the whole sequence at once (no cache); `torch.cat` semantics
for append_kv; torch's SDPA for one cached attention step.
"""
import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.kvcache as kvcache
from course_utils.kvcache import TinyGPT, TinyGPTConfig, append_kv, generate


def test_doctests():
    result = doctest.testmod(kvcache, raise_on_error=False)
    assert result.attempted >= 2 and result.failed == 0


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 3), t=st.integers(0, 6), t_new=st.integers(1, 4), d=st.integers(1, 5))
def test_append_kv_is_concatenation_in_time(b, h, t, t_new, d):
    k_new, v_new = torch.randn(b, h, t_new, d), torch.randn(b, h, t_new, d)
    if t == 0:
        k, v = append_kv(None, None, k_new, v_new)
        assert k is k_new and v is v_new
        return
    ck, cv = torch.randn(b, h, t, d), torch.randn(b, h, t, d)
    k, v = append_kv(ck, cv, k_new, v_new)
    assert k.shape == v.shape == (b, h, t + t_new, d)
    assert torch.equal(k[:, :, :t], ck) and torch.equal(k[:, :, t:], k_new)
    assert torch.equal(v[:, :, :t], cv) and torch.equal(v[:, :, t:], v_new)


def test_one_cached_attention_step_equals_the_last_row_of_full_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 4, generator=g) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ck, cv = append_kv(k[:, :, :8], v[:, :, :8], k[:, :, 8:], v[:, :, 8:])
    step = F.scaled_dot_product_attention(q[:, :, 8:], ck, cv)       # the newest query sees every key
    torch.testing.assert_close(step, full[:, :, 8:])


@pytest.mark.parametrize("chunks", [[7], [1] * 7, [3, 1, 2, 1], [2, 5]])
def test_cached_forward_equals_full_forward(chunks):
    torch.manual_seed(0)
    model = TinyGPT(TinyGPTConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, max_len=32)).eval()
    idx = torch.randint(20, (2, sum(chunks)))
    full, _ = model(idx)
    cache, outs, start = None, [], 0
    for c in chunks:
        logits, cache = model(idx[:, start:start + c], cache)
        outs.append(logits)
        start += c
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache[0][0].shape == (2, 2, sum(chunks), 8)


def test_generate_same_tokens_with_and_without_cache():
    torch.manual_seed(1)
    model = TinyGPT(TinyGPTConfig(vocab_size=30, n_layer=2, n_head=4, n_embd=32, max_len=64))
    prompt = torch.randint(30, (3, 5))
    a = generate(model, prompt, 20, use_cache=False)
    b = generate(model, prompt, 20, use_cache=True)
    assert a.shape == (3, 25) and torch.equal(a, b) and torch.equal(a[:, :5], prompt)
    assert model.training, "generate restores the training flag"


def test_bad_input():
    with pytest.raises(ValueError, match="except time"):
        append_kv(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 1, 5), torch.zeros(1, 2, 1, 5))
    with pytest.raises(ValueError, match="both be None"):
        append_kv(None, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="n_embd"):
        TinyGPTConfig(n_embd=10, n_head=4)
    model = TinyGPT(TinyGPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, max_len=4))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 3))

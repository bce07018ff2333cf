"""course_utils.kvcache: the append step changes nothing but the cost.

References: `torch.cat` semantics; full causal attention (torch SDPA) computed at once;
`course_utils.gpt.KVCache` (notebook 05's preallocated cache) fed the same keys and values.
"""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.kvcache as kvcache
from course_utils.gpt import GPT, GPTConfig
from course_utils.kvcache import KVCache
from course_utils.kvcache import append_kv


def test_doctests():
    result = doctest.testmod(kvcache, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0  # append_kv, KVCache, shifted_causal_mask


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


@settings(max_examples=20, deadline=None)
@given(
    chunks=st.lists(st.integers(1, 4), min_size=1, max_size=5),
    h=st.integers(1, 3),
    d=st.integers(1, 6),
    seed=st.integers(0, 999),
)
def test_cached_attention_in_chunks_equals_full_causal_attention(chunks, h, d, seed):
    g = torch.Generator().manual_seed(seed)
    T = sum(chunks)
    q, k, v = (torch.randn(2, h, T, d, generator=g) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ck = cv = None
    outs, start = [], 0
    for c in chunks:
        ck, cv = append_kv(ck, cv, k[:, :, start : start + c], v[:, :, start : start + c])
        q_pos = torch.arange(start, start + c)[:, None]
        mask = torch.arange(start + c)[None, :] <= q_pos  # new queries see the past and themselves
        outs.append(F.scaled_dot_product_attention(q[:, :, start : start + c], ck, cv, attn_mask=mask))
        start += c
    torch.testing.assert_close(torch.cat(outs, dim=2), full, atol=1e-6, rtol=1e-6)


def test_agrees_with_the_preallocated_cache_of_course_utils_gpt():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(n_layers=1, max_len=10)
    ck = cv = None
    for t_new in (3, 1, 2):
        k, v = torch.randn(2, 4, t_new, 8, generator=g), torch.randn(2, 4, t_new, 8, generator=g)
        ck, cv = append_kv(ck, cv, k, v)
        k_gpt, v_gpt = cache.update(0, k, v)
        assert torch.equal(ck, k_gpt) and torch.equal(cv, v_gpt)


def test_gpt_generation_same_tokens_with_and_without_cache():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=30, max_len=64, n_layers=2, n_heads=4, d_model=32, rope=True))
    prompt = torch.randint(30, (3, 5))
    a = model.generate(prompt, 40, temperature=0, use_cache=False)
    b = model.generate(prompt, 40, temperature=0, use_cache=True)
    assert a.shape == (3, 45) and torch.equal(a, b)


def test_bad_input():
    with pytest.raises(ValueError, match="except time"):
        append_kv(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 1, 5), torch.zeros(1, 2, 1, 5))
    with pytest.raises(ValueError, match="both be None"):
        append_kv(None, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    with pytest.raises(TypeError, match="k_new"):
        append_kv(None, None, [1, 2], torch.zeros(1, 1))

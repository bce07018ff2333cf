"""course_utils.gpt and course_utils.sampling against transformers (GPT-2 and its logits warpers),
and the properties that matter: causality, KV-cache generation identical to uncached, parameter counts.
"""

import doctest

import course_utils  # noqa: F401
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.gpt as gpt_module
import course_utils.sampling as sampling
from course_utils.gpt import (
    GPT,
    GPTConfig,
    KVCache,
    causal_lm_loss,
    from_hf_gpt2,
    parameter_formula,
    shifted_causal_mask,
    to_hf_gpt2,
)
from course_utils.measure import count_parameters
from course_utils.sampling import apply_temperature, sample_next, top_k_filter, top_p_filter

SMALL = dict(vocab_size=37, max_len=24, n_layers=2, n_heads=4, d_model=32)


def small(seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **kw})).eval()


def trained(seed=0, steps=5, **kw):
    """A model a few Adam steps away from its initialisation (so zero biases / unit LayerNorms are not special)."""
    model = small(seed, **kw).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, model.config.vocab_size, (4, model.config.max_len), generator=g)
        loss = causal_lm_loss(model(x)[0], x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_doctests():
    for mod, n_examples in ((gpt_module, 3), (sampling, 4)):  # the KV cache's examples: test_kvcache.py
        result = doctest.testmod(mod, raise_on_error=False)
        assert result.attempted >= n_examples and result.failed == 0, mod.__name__


# ------------------------------------------------------------------ the reference: transformers' GPT-2
@pytest.mark.parametrize("seed", [0, 1])
def test_logits_equal_transformers_gpt2(seed):
    model = trained(seed)
    hf = to_hf_gpt2(model)
    x = torch.randint(0, SMALL["vocab_size"], (3, SMALL["max_len"]), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ours, theirs = model(x)[0], hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()
    # and the loss: transformers shifts labels=input_ids itself, exactly like causal_lm_loss
    with torch.no_grad():
        assert torch.allclose(causal_lm_loss(ours, x), hf(x, labels=x).loss, atol=1e-5)


def test_round_trip_through_transformers():
    model = trained(3)
    back = from_hf_gpt2(to_hf_gpt2(model))
    x = torch.randint(0, SMALL["vocab_size"], (2, 10))
    with torch.no_grad():
        assert torch.allclose(back(x)[0], model(x)[0], atol=1e-6)


def test_no_gpt2_twin_for_rope_or_no_bias():
    with pytest.raises(ValueError, match="rope=True"):
        to_hf_gpt2(small(rope=True))
    with pytest.raises(ValueError, match="bias=False"):
        to_hf_gpt2(small(bias=False))


def test_parameter_counts_gpt2_small():
    """GPT-2 small: 124,439,808 parameters (the paper's table says 117M, a counting slip later corrected)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        ours = GPT(GPTConfig())
        theirs = GPT2LMHeadModel(GPT2Config())
    assert (
        count_parameters(ours)
        == parameter_formula(GPTConfig())
        == sum(p.numel() for p in theirs.parameters())
        == 124_439_808
    )
    for kw in (dict(rope=True), dict(bias=False), dict(tie_embeddings=False)):
        config = GPTConfig(**{**SMALL, **kw})
        assert count_parameters(GPT(config)) == parameter_formula(config), kw


def test_weight_tying():
    model = small()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert small(tie_embeddings=False).lm_head.weight is not small(tie_embeddings=False).transformer.wte.weight


# ------------------------------------------------------------------ the model's properties
@pytest.mark.parametrize("kw", [{}, {"rope": True}, {"attn_impl": "torch"}])
def test_causal_future_tokens_do_not_change_the_past(kw):
    model = trained(1, **kw)
    x = torch.randint(0, SMALL["vocab_size"], (2, 16))
    y = x.clone()
    y[:, 9:] = (y[:, 9:] + 1) % SMALL["vocab_size"]
    with torch.no_grad():
        a, b = model(x)[0], model(y)[0]
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:], atol=1e-3)


def test_torch_attention_matches_ours():
    a, b = trained(2), trained(2, attn_impl="torch")
    x = torch.randint(0, SMALL["vocab_size"], (3, 20))
    with torch.no_grad():
        assert torch.allclose(a(x)[0], b(x)[0], atol=1e-5)


def test_causal_lm_loss_shifts_the_targets():
    logits = torch.randn(2, 5, 7)
    x = torch.randint(0, 7, (2, 5))
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), x[:, 1:].reshape(-1))
    assert torch.allclose(causal_lm_loss(logits, x), ref)
    model = small()
    _, loss = model(x[:, :-1] % SMALL["vocab_size"], targets=x[:, 1:] % SMALL["vocab_size"])
    assert torch.allclose(loss, causal_lm_loss(model(x % SMALL["vocab_size"])[0], x % SMALL["vocab_size"]), atol=1e-6)


def test_rope_model_uses_no_position_table():
    model = small(rope=True)
    assert "wpe" not in model.transformer


# ------------------------------------------------------------------ the KV cache
@pytest.mark.parametrize("kw", [{}, {"rope": True}, {"attn_impl": "torch"}])
def test_cached_logits_equal_full_forward(kw):
    model = trained(4, **kw)
    x = torch.randint(0, SMALL["vocab_size"], (2, 20))
    with torch.no_grad():
        full = model(x)[0]
        cache = KVCache(model.config.n_layers, model.config.max_len)
        parts = [model(x[:, :7], kv_cache=cache)[0]]  # prefill 7
        for t in range(7, 20, 3):  # then chunks of 3 (and 1 at the end)
            parts.append(model(x[:, t : t + 3], kv_cache=cache)[0])
    assert cache.length == 20
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"rope": True}])
@pytest.mark.parametrize(
    "sampling_kw", [dict(temperature=0), dict(temperature=0.8, top_k=5), dict(temperature=1.3, top_p=0.9)]
)
def test_generation_with_cache_is_identical(kw, sampling_kw):
    model = trained(5, **kw)
    prompt = torch.randint(0, SMALL["vocab_size"], (2, 4))
    # 40 new tokens: past max_len=24, so the window-full path runs too
    out = [
        model.generate(prompt, 40, use_cache=c, generator=torch.Generator().manual_seed(7), **sampling_kw)
        for c in (True, False)
    ]
    assert out[0].shape == (2, 44)
    assert torch.equal(out[0], out[1])


def test_generate_restores_training_mode():
    model = small().train()
    model.generate(torch.zeros(1, 1, dtype=torch.long), 2)
    assert model.training


def test_kv_cache_errors():
    cache = KVCache(2, 4)
    cache.update(0, torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8))
    with pytest.raises(ValueError, match="exceed max_len=4"):
        cache.update(0, torch.zeros(1, 2, 2, 8), torch.zeros(1, 2, 2, 8))
    with pytest.raises(ValueError, match="layer must lie"):
        cache.update(5, torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))
    with pytest.raises(ValueError, match="another batch"):
        cache.update(0, torch.zeros(3, 2, 1, 8), torch.zeros(3, 2, 1, 8))
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="exceed max_len"):
        small()(torch.zeros(1, 25, dtype=torch.long))


def test_shifted_causal_mask():
    from course_utils.attention import causal_mask

    assert torch.equal(shifted_causal_mask(5, 0), causal_mask(5))
    assert torch.equal(shifted_causal_mask(1, 6), torch.ones(1, 7, dtype=torch.bool))


@pytest.mark.parametrize(
    "call,err,words",
    [
        (lambda: GPTConfig(d_model=30, n_heads=4), ValueError, "divisible"),
        (lambda: GPTConfig(n_layers=0), ValueError, "n_layers must be an int >= 1"),
        (lambda: GPTConfig(attn_impl="flash"), ValueError, "attn_impl"),
        (lambda: GPT({"n_layers": 2}), TypeError, "GPTConfig"),
        (lambda: small()(torch.zeros(2, 3)), TypeError, "integer dtype"),
        (lambda: small()(torch.full((1, 3), 99)), ValueError, r"token ids must lie in \[0, 37\)"),
        (lambda: small().generate(torch.zeros(1, 1, dtype=torch.long), -1), ValueError, "max_new_tokens"),
        (lambda: causal_lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long)), ValueError, "input_ids"),
    ],
)
def test_clear_errors(call, err, words):
    with pytest.raises(err, match=words):
        call()


# ------------------------------------------------------------------ sampling against transformers' warpers
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    V=st.integers(2, 40),
    k=st.integers(1, 45),
    p=st.floats(0.05, 1.0),
    T=st.floats(0.1, 4.0),
)
def test_filters_match_transformers(seed, V, k, p, T):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(seed)) * 3
    ids = torch.zeros(3, 1, dtype=torch.long)
    assert torch.allclose(apply_temperature(logits, T), TemperatureLogitsWarper(T)(ids, logits.clone()))
    assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    ours, theirs = top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits.clone())
    # transformers' boundary rule is "cumulative mass <= 1 - p is removed" (computed ascending);
    # ours is "mass before >= p"; they agree unless a boundary is within float rounding of p
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs)) or _on_boundary(logits, p)


def _on_boundary(logits, p):
    probs = logits.softmax(-1).sort(-1, descending=True).values
    return bool(((probs.cumsum(-1) - p).abs() < 1e-5).any())


def test_temperature_sampling_frequencies():
    """Draws follow softmax(z / T): a chi-square test at T = 0.5 and 2 (fails only by chance, p < 1e-6)."""
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    n = 20000
    for T in (0.5, 2.0):
        draws = sample_next(z.expand(n, 4), temperature=T, generator=g).squeeze(1)
        counts = torch.bincount(draws, minlength=4).double()
        expected = n * torch.softmax(z[0] / T, -1).double()
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 33.0, (T, chi2)  # chi-square, 3 degrees of freedom, p ~ 3e-7
    assert torch.equal(sample_next(z, temperature=0), torch.tensor([[0]]))


def test_top_k_and_top_p_never_sample_removed_tokens():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(2000, 4)
    g = torch.Generator().manual_seed(1)
    assert set(sample_next(z, top_k=2, generator=g).unique().tolist()) == {0, 1}
    assert set(sample_next(z, top_p=0.8, generator=g).unique().tolist()) == {0, 1}
    assert set(sample_next(z, top_p=0.81, generator=g).unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: apply_temperature(torch.zeros(3), 0), "temperature must be a number > 0"),
        (lambda: top_k_filter(torch.zeros(3), 0), "k must be an int >= 1"),
        (lambda: top_p_filter(torch.zeros(3), 1.5), "p must be a number > 0 and <= 1"),
        (lambda: sample_next(torch.zeros(3), 1.0), r"\(B, V\)"),
    ],
)
def test_sampling_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()


# ---------------------------------------------------------------------------------------------
# the ablation switches (notebook 05's ladder)
# ---------------------------------------------------------------------------------------------
GPT2_BLOCK_KEYS = [
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
]  # fmt: skip


def test_switches_at_their_defaults_are_the_model_without_switches():
    """Defaults = GPT-2's names in GPT-2's order, and explicit defaults give the very same weights and logits."""
    keys = list(small().state_dict())
    blocks = [f"transformer.h.{i}.{k}" for i in range(SMALL["n_layers"]) for k in GPT2_BLOCK_KEYS]
    assert keys == ["transformer.wte.weight", *blocks, "transformer.ln_f.weight", "transformer.ln_f.bias",
                    "transformer.wpe.weight", "lm_head.weight"]  # fmt: skip
    a, b = small(3), small(3, attention="multi", mlp=True, residual=True, layer_norm=True)
    x = torch.randint(SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in keys)
    assert torch.equal(a(x)[0], b(x)[0]) and a.config.is_full


def test_single_head_is_the_multi_head_model_with_one_head():
    x = torch.randint(SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(1))
    a, b = small(4, attention="single"), small(4, n_heads=1)
    assert a.config.head_size == SMALL["d_model"] and torch.equal(a(x)[0], b(x)[0])


def test_without_attention_and_mlp_the_model_is_a_bigram():
    """Each position's logits depend on its own token (and position) only: change every other token, nothing moves."""
    model = small(5, attention="none", mlp=False)
    assert list(model.state_dict()) == [
        "transformer.wte.weight", "transformer.ln_f.weight", "transformer.ln_f.bias", "transformer.wpe.weight",
        "lm_head.weight",
    ]  # fmt: skip
    x = torch.randint(SMALL["vocab_size"], (1, 20), generator=torch.Generator().manual_seed(2))
    y = (x + 1) % SMALL["vocab_size"]
    y[0, 7] = x[0, 7]
    assert torch.equal(model(x)[0][0, 7], model(y)[0][0, 7])
    assert not torch.allclose(model(x)[0][0, 6], model(y)[0][0, 6])
    assert model.generate(x[:, :3], 4).shape == (1, 7)  # no attention: nothing to cache, still generates


@pytest.mark.parametrize(
    "kw",
    [dict(attention="none", mlp=False), dict(attention="single"), dict(mlp=False), dict(residual=False),
     dict(layer_norm=False), dict(attention="none", mlp=False, residual=False, layer_norm=False)],
)  # fmt: skip
def test_every_ablation_counts_its_parameters_stays_causal_and_trains(kw):
    model = small(6, **kw)
    assert count_parameters(model) == parameter_formula(model.config)
    x = torch.randint(SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[:, 12:] = (y[:, 12:] + 1) % SMALL["vocab_size"]
    assert torch.allclose(model(x)[0][:, :12], model(y)[0][:, :12], atol=1e-6)
    trained(6, **kw)  # a few Adam steps run
    if not model.config.layer_norm:
        assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())


def test_ablation_changes_the_computation_and_has_no_gpt2_twin():
    x = torch.randint(SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(4))
    full, no_res = small(7), small(7, residual=False)
    assert set(full.state_dict()) == set(no_res.state_dict())
    assert not torch.allclose(full(x)[0], no_res(x)[0])
    with pytest.raises(ValueError, match="every block part"):
        to_hf_gpt2(no_res)


@pytest.mark.parametrize(
    "kw, err, words",
    [(dict(attention="two"), ValueError, "attention"), (dict(mlp=1), TypeError, "mlp must be True or False")],
)
def test_switch_errors(kw, err, words):
    with pytest.raises(err, match=words):
        GPTConfig(**{**SMALL, **kw})

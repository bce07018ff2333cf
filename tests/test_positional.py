"""course_utils.positional against the formulas, against transformers' own implementations, and its properties.

Sizes and offsets here differ from the ones notebook 02 uses (d = 10, 26, 130, 512;
offsets up to 3 * 10^4), so the notebook's pictures are not the only evidence.
"""

import math

import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    frequencies,
    layout_permutation,
    offset_matrix,
    sinusoidal_encoding,
)


def formula_pe(n, d, base=10000.0):
    """The paper's formula, element by element in pure Python (interleaved)."""
    rows = []
    for pos in range(n):
        row = []
        for j in range(d):
            i = j // 2
            angle = pos / base ** (2 * i / d)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def formula_concat(n, d, base=10000.0):
    """The concatenated form of the lecture notes "Transformers intuition": first d/2 dims sin(p / 10000^(i/d_m)), last d/2 cos(...), d_m = d/2."""
    dm = d // 2
    return torch.tensor(
        [
            [math.sin(p / base ** (i / dm)) for i in range(dm)] + [math.cos(p / base ** (i / dm)) for i in range(dm)]
            for p in range(n)
        ],
        dtype=torch.float64,
    )


# ----------------------------------------------------------------------------- the table
@pytest.mark.parametrize("n,d", [(7, 10), (33, 26), (5, 2), (12, 130)])
def test_sinusoidal_matches_the_formulas(n, d):
    assert torch.allclose(sinusoidal_encoding(n, d, dtype=torch.float64), formula_pe(n, d), atol=1e-12)
    assert torch.allclose(
        sinusoidal_encoding(n, d, "concatenated", dtype=torch.float64), formula_concat(n, d), atol=1e-12
    )
    assert sinusoidal_encoding(n, d).dtype == torch.get_default_dtype()


def test_matches_transformers_implementations():
    """Marian and GPT-J in transformers both build the concatenated (sin | cos) table."""
    from transformers.models.gptj.modeling_gptj import create_sinusoidal_positions
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    marian = MarianSinusoidalPositionalEmbedding(300, 46).create_weight()
    assert torch.allclose(sinusoidal_encoding(300, 46, "concatenated"), marian, atol=1e-6)
    gptj = create_sinusoidal_positions(300, 46)
    assert torch.allclose(sinusoidal_encoding(300, 46, "concatenated"), gptj, atol=2e-5)  # GPT-J: float32 angles


def test_base_and_frequencies():
    w = frequencies(512)
    assert w[0] == 1.0 and torch.isclose(w[-1], torch.tensor(10000.0 ** (-510 / 512), dtype=torch.float64))
    assert torch.allclose(
        torch.diff(torch.log(w)), torch.full((255,), -2 / 512 * math.log(10000.0), dtype=torch.float64)
    )
    assert torch.allclose(sinusoidal_encoding(9, 6, base=100.0, dtype=torch.float64), formula_pe(9, 6, base=100.0))


@pytest.mark.parametrize("d", [2, 8, 26, 130])
def test_layout_permutation_is_a_permutation_between_the_layouts(d):
    inter, concat = sinusoidal_encoding(50, d), sinusoidal_encoding(50, d, "concatenated")
    p, q = layout_permutation(d), layout_permutation(d, "interleaved", "concatenated")
    assert sorted(p.tolist()) == list(range(d))
    assert torch.equal(concat[:, p], inter) and torch.equal(inter[:, q], concat)
    assert torch.equal(p[q], torch.arange(d)) and torch.equal(
        layout_permutation(d, "interleaved", "interleaved"), torch.arange(d)
    )


def test_each_pair_is_on_the_unit_circle_and_rows_are_distinct():
    pe = sinusoidal_encoding(2000, 26, dtype=torch.float64).reshape(2000, 13, 2)
    assert torch.allclose(pe.norm(dim=-1), torch.ones(2000, 13, dtype=torch.float64))
    dist = torch.cdist(pe.reshape(2000, 26), pe.reshape(2000, 26))
    assert (dist + torch.eye(2000, dtype=torch.float64) * 10).min() > 1e-3  # every position is unique


# ----------------------------------------------------------------------------- M_k
@pytest.mark.parametrize("d", [2, 10, 130])
@pytest.mark.parametrize("k", [0, 1, 3, 17, -5, 250, 30000])
def test_offset_matrix_shifts_every_position(d, k):
    n = 12_000
    pe = sinusoidal_encoding(n + max(k, 0) + 1, d, dtype=torch.float64)
    M = offset_matrix(k, d, dtype=torch.float64)
    pos = torch.tensor([0, 1, 7, 999, 5000, 10_000, n]) if k >= 0 else torch.tensor([5, 100, 10_000])
    err = (pe[pos] @ M.T - pe[pos + k]).abs().max().item()
    assert err < 1e-9, f"k={k}, d={d}: max error {err}"


def test_offset_matrix_structure():
    M = offset_matrix(7, 10, dtype=torch.float64)
    assert torch.allclose(M @ M.T, torch.eye(10, dtype=torch.float64), atol=1e-12)  # orthogonal
    assert torch.allclose(offset_matrix(-7, 10, dtype=torch.float64), M.T, atol=1e-15)  # M_{-k} = M_k^T
    assert torch.allclose(
        offset_matrix(3, 10, dtype=torch.float64) @ offset_matrix(4, 10, dtype=torch.float64), M, atol=1e-12
    )
    off_block = M.clone()
    for i in range(5):
        off_block[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = 0
    assert off_block.abs().max() == 0  # block-diagonal
    assert torch.allclose(torch.linalg.det(M[:2, :2]), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(offset_matrix(0, 6), torch.eye(6))
    # fractional offsets interpolate the same rotation
    pe = lambda p: torch.stack([torch.sin(p * frequencies(10)), torch.cos(p * frequencies(10))], -1).reshape(10)
    assert torch.allclose(
        offset_matrix(2.5, 10, dtype=torch.float64) @ pe(torch.tensor(4.0, dtype=torch.float64)),
        pe(torch.tensor(6.5, dtype=torch.float64)),
        atol=1e-12,
    )


@settings(max_examples=60, deadline=None)
@given(pos=st.integers(0, 20_000), k=st.integers(-20_000, 20_000), half=st.integers(1, 40))
def test_offset_property_hypothesis(pos, k, half):
    d = 2 * half
    w = frequencies(d)
    at = lambda p: torch.stack([torch.sin(p * w), torch.cos(p * w)], -1).reshape(d)
    assert torch.allclose(offset_matrix(k, d, dtype=torch.float64) @ at(pos), at(pos + k), atol=1e-9)


def test_dot_product_depends_on_offset_only():
    pe = sinusoidal_encoding(3000, 26, dtype=torch.float64)
    k = torch.arange(0, 500)
    closed = torch.cos(k[:, None] * frequencies(26)[None, :]).sum(-1)  # sum_i cos(k w_i)
    for p in (0, 17, 2400):
        assert torch.allclose((pe[p] * pe[p + k]).sum(-1), closed, atol=1e-10)


# ----------------------------------------------------------------------------- RoPE
def test_rope_matches_complex_multiplication():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 11, 8, generator=g, dtype=torch.float64)
    pos = torch.arange(11, dtype=torch.float64)
    z = torch.view_as_complex(x.reshape(2, 3, 11, 4, 2).contiguous())
    rot = torch.polar(torch.ones(11, 4, dtype=torch.float64), pos[:, None] * frequencies(8))
    ref = torch.view_as_real(z * rot).reshape(2, 3, 11, 8)
    assert torch.allclose(apply_rope(x), ref, atol=1e-12)


def test_rope_matches_gptj_and_llama():
    """GPT-J rotates consecutive pairs (like us); Llama rotates i with i + d/2 (ours after a permutation)."""
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb as gptj_rope
    from transformers.models.gptj.modeling_gptj import create_sinusoidal_positions
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_rope

    B, h, T, d = 2, 4, 37, 16
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(B, h, T, d, generator=g), torch.randn(B, h, T, d, generator=g)
    sincos = create_sinusoidal_positions(T, d)[None].expand(B, T, d)  # (B, T, d): sin | cos
    sin, cos = sincos[..., : d // 2], sincos[..., d // 2 :]
    ref = gptj_rope(q.transpose(1, 2), sin, cos).transpose(1, 2)  # GPT-J works on (B, T, h, d)
    assert torch.allclose(apply_rope(q), ref, atol=2e-5)

    to_half = layout_permutation(d, "interleaved", "concatenated")
    ang = torch.arange(T)[:, None] * frequencies(d).float()[None]  # (T, d/2)
    cos2, sin2 = torch.cat([ang.cos(), ang.cos()], -1)[None], torch.cat([ang.sin(), ang.sin()], -1)[None]
    lq, lk = llama_rope(q[..., to_half], k[..., to_half], cos2, sin2)
    assert torch.allclose(apply_rope(q)[..., to_half], lq, atol=1e-5)
    assert torch.allclose(apply_rope(k)[..., to_half], lk, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 5000), n=st.integers(0, 5000), shift=st.integers(0, 5000), half=st.integers(1, 16))
def test_rope_scores_depend_on_offset_only(m, n, shift, half):
    d = 2 * half
    g = torch.Generator().manual_seed(half)
    q, k = torch.randn(1, d, generator=g, dtype=torch.float64), torch.randn(1, d, generator=g, dtype=torch.float64)
    score = lambda a, b: (apply_rope(q, torch.tensor([a])) * apply_rope(k, torch.tensor([b]))).sum()
    assert torch.isclose(score(m, n), score(m + shift, n + shift), atol=1e-9)
    assert torch.isclose(score(m, n), (q * apply_rope(k, torch.tensor([n - m]))).sum(), atol=1e-9)


def test_rope_shapes_positions_and_norm():
    x = torch.randn(3, 2, 5, 6)
    y = apply_rope(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation keeps lengths
    assert torch.equal(apply_rope(x, torch.zeros(5)), x)
    per_row = torch.arange(5)[None, None, :] + torch.tensor([0, 10, 20])[:, None, None]  # (3, 1, 5)
    y2 = apply_rope(x, per_row)
    assert torch.allclose(y2[1], apply_rope(x[1], torch.arange(10, 15)), atol=1e-6)
    assert apply_rope(x.half()).dtype == torch.float16
    # RoPE of [1, 0, 1, 0, ...] at position p is the (cos, sin) pairs: the PE table with each pair swapped
    ones = torch.tensor([1.0, 0.0] * 5, dtype=torch.float64).expand(40, 10)
    swapped = sinusoidal_encoding(40, 10, dtype=torch.float64).reshape(40, 5, 2).flip(-1).reshape(40, 10)
    assert torch.allclose(apply_rope(ones), swapped, atol=1e-12)


# ----------------------------------------------------------------------------- modules
def test_modules():
    x = torch.randn(2, 9, 12)
    sin = SinusoidalPositionalEncoding(12, max_len=4)
    assert torch.allclose(sin(x), x + sinusoidal_encoding(9, 12))  # longer than its buffer: still works
    learned = LearnedPositionalEmbedding(9, 12)
    assert torch.allclose(learned(x), x + learned.weight)
    assert sum(p.numel() for p in learned.parameters()) == 9 * 12 and not list(sin.parameters())
    with pytest.raises(ValueError, match="exceeds max_len=9"):
        learned(torch.randn(1, 10, 12))
    with pytest.raises(ValueError, match=r"\(B, T, 12\)"):
        sin(torch.randn(9, 12))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: sinusoidal_encoding(10, 7), ValueError, "d_model must be even"),
        (lambda: sinusoidal_encoding(0, 8), ValueError, "n_positions must be an int >= 1, got 0"),
        (lambda: sinusoidal_encoding(10.0, 8), TypeError, "n_positions must be an int, got float"),
        (lambda: sinusoidal_encoding(10, -4), ValueError, "d_model must be an int >= 1"),
        (lambda: sinusoidal_encoding(10, True), TypeError, "d_model"),
        (lambda: sinusoidal_encoding(10, 8, "interleave"), ValueError, "layout must be one of"),
        (lambda: sinusoidal_encoding(10, 8, base=1.0), ValueError, "base must be a number > 1"),
        (lambda: offset_matrix(1, 5), ValueError, "d_model must be even"),
        (lambda: offset_matrix("3", 8), TypeError, r"k \(the offset in positions\) must be a number"),
        (
            lambda: offset_matrix(float("inf"), 8),
            ValueError,
            r"k \(the offset in positions\) must be a finite number, got inf",
        ),
        (lambda: layout_permutation(8, "concat"), ValueError, "source must be one of"),
        (lambda: apply_rope(torch.zeros(4, 5)), ValueError, "must be even"),
        (lambda: apply_rope(torch.zeros(4)), ValueError, r"\(\.\.\., T, d\) torch.Tensor with at least 2 dimensions"),
        (lambda: apply_rope([[1.0, 2.0]]), TypeError, r"x must be a \(\.\.\., T, d\) torch.Tensor"),
        (lambda: apply_rope(torch.ones(3, 4, dtype=torch.long)), TypeError, "floating-point"),
        (lambda: apply_rope(torch.zeros(4, 6), torch.arange(5)), ValueError, "size T=4"),
        (lambda: LearnedPositionalEmbedding(0, 8), ValueError, "max_len must be an int >= 1"),
        (lambda: SinusoidalPositionalEncoding(8, max_len=0), ValueError, "max_len must be an int >= 1"),
        (lambda: LearnedPositionalEmbedding(4, 8, init_std=-1.0), ValueError, "init_std"),
    ],
)
def test_bad_input_is_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_docstring_examples():
    """The worked examples in the module's docstrings are true."""
    import doctest

    import course_utils.positional as positional

    failed, attempted = doctest.testmod(positional, verbose=False)
    assert attempted >= 6 and failed == 0


def test_rope_angles_in_float32_are_close_and_a_bad_dtype_is_refused():
    """float32 angles (Llama's, notebook 09) differ from float64 ones only by rounding, growing with position."""
    x = torch.randn(1, 2, 400, 64, dtype=torch.float64)
    exact = apply_rope(x)
    rounded = apply_rope(x, angle_dtype=torch.float32)
    err = (exact - rounded).abs().amax(dim=(0, 1, 3))  # (T,)
    assert float(err[0]) == 0.0 and 0 < float(err.max()) < 1e-3 and float(err[300:].max()) > float(err[:30].max())
    with pytest.raises(ValueError, match="angle_dtype"):
        apply_rope(x, angle_dtype=torch.float16)

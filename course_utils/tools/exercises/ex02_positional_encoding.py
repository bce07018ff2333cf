"""The graded checks of notebook 02 (positional encodings): references and known mistakes.

One block per exercise. `<name>_properties(fn)` is what a test cell's visible part calls:
shape, dtype and properties any right answer has (pairs on the unit circle, M_k orthogonal,
lengths kept by a rotation, causality), never the reference values. `check_<name>(fn)` is
the hidden part: the course's own functions (`course_utils.positional`, and the GPT's
`CausalSelfAttention` for the build exercise) on inputs other than the visible ones, with
the slips students make listed by what they produce, so that a wrong answer is named.
Messages describe the kind of input that failed ("a long table", "a batch of three"),
never the input itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.attention import merge_heads, scaled_dot_product_attention, split_heads
from course_utils.gpt import CausalSelfAttention, GPTConfig
from course_utils.positional import apply_rope, layout_permutation, offset_matrix, sinusoidal_encoding
from course_utils.tools.grading import GradingError, call, expect, expect_close, expect_equal, expect_shape

F64 = torch.float64
# the course's own answers, which each exercise asks the student to write instead of calling
FORBIDDEN_PE = (sinusoidal_encoding,)
FORBIDDEN_OFFSET = (offset_matrix,)
FORBIDDEN_ROPE = (apply_rope,)
FORBIDDEN_ATTENTION = (apply_rope, F.scaled_dot_product_attention, scaled_dot_product_attention)


def _expect_float64(out, name: str, why: str) -> None:
    """A tensor in float64, with a reason the student can act on."""
    expect(isinstance(out, torch.Tensor), f"{name} should return a torch.Tensor, got {type(out).__name__}.")
    expect(out.dtype == F64, f"{name}: return float64 (got {out.dtype}): {why}.")


def _frequencies(d: int, exponent: str = "2i/d") -> torch.Tensor:
    """w_i = 10000^(-2i/d), or with the slip i/d, shape (d/2,), float64."""
    i = torch.arange(d // 2, dtype=F64)
    return 10000.0 ** (-(2 * i if exponent == "2i/d" else i) / d)


# ----------------------------------------------------------------------------- Exercise 1: the table
def pe_mistakes(n: int, d: int) -> dict:
    """The tables (n, d) that common slips give, keyed by what the student should change."""
    pos = torch.arange(n, dtype=F64)[:, None]
    j = torch.arange(d, dtype=F64)[None, :]
    pair = torch.div(j, 2, rounding_mode="floor")
    even = j % 2 == 0

    def table(angle, first=torch.sin, second=torch.cos):
        return torch.where(even, first(angle), second(angle))

    return {
        "sin and cos are swapped: even dimensions 2i hold the sine, odd dimensions 2i+1 the cosine": table(
            pos / 10000 ** (2 * pair / d), torch.cos, torch.sin
        ),
        "the exponent is i/d instead of 2i/d (i counts pairs, the exponent uses 2i)": table(pos / 10000 ** (pair / d)),
        "the exponent uses the column index j for every column; both columns 2i and 2i+1 use 2i/d": table(
            pos / 10000 ** (j / d)
        ),
        "this is the concatenated layout (all sines, then all cosines); interleave them: sin in 0::2, cos in 1::2": (
            sinusoidal_encoding(n, d, "concatenated", dtype=F64)
        ),
        "pos is multiplied by 10000^(2i/d); it should be divided": table(pos * 10000 ** (2 * pair / d)),
    }


def positional_encoding_properties(fn) -> None:
    """Shape, float64, position 0 = (0, 1, 0, 1, ...), every (sin, cos) pair on the unit circle."""
    pe = call(fn, 10, 8, forbidden=FORBIDDEN_PE)
    _expect_float64(pe, "positional_encoding", "float32 loses digits once pos reaches thousands")
    expect_shape(pe, (10, 8), "positional_encoding(10, 8)")
    expect_close(pe[0], torch.tensor([0.0, 1.0] * 4, dtype=F64), "row 0 of positional_encoding(10, 8)", atol=1e-12)
    radius = pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2  # (10, 4): sin^2 + cos^2 of each pair
    expect(
        torch.allclose(radius, torch.ones_like(radius), atol=1e-9),
        "positional_encoding(10, 8): every pair (2i, 2i+1) should be (sin a, cos a) of one angle a, on the unit circle.",
    )


def check_positional_encoding(fn) -> None:
    """The table against course_utils on a long table, a single position, and more dimensions than positions."""
    for n, d, on in [
        (3000, 26, "a long table, thousands of positions and an odd number of pairs"),
        (1, 2, "a single position and the smallest d_model"),
        (7, 130, "a short table with more dimensions than positions"),
    ]:
        out = call(fn, n, d, forbidden=FORBIDDEN_PE)
        _expect_float64(out, "positional_encoding", "float32 loses digits once pos reaches thousands")
        ref = sinusoidal_encoding(n, d, dtype=F64)
        if out.shape == ref.shape and not torch.allclose(out, ref, atol=1e-9) and torch.allclose(out, ref, atol=1e-2):
            raise GradingError(
                f"positional_encoding is accurate only to {(out - ref).abs().max():.0e} (on {on}): "
                "compute the angles pos * w_i in float64, not in float32 and then cast."
            )
        expect_close(out, ref, "positional_encoding", atol=1e-9, mistakes=pe_mistakes(n, d), on=on)


# ----------------------------------------------------------------------------- Exercise 2: M_k
def offset_mistakes(k: float, d: int) -> dict:
    """The matrices (d, d) that common slips give for M_k."""

    def blockdiag(angle, block):
        return torch.block_diag(*[block(torch.cos(a), torch.sin(a)) for a in angle])

    def right(c, s):
        return torch.stack([torch.stack([c, s]), torch.stack([-s, c])])

    def swapped(c, s):
        return torch.stack([torch.stack([s, c]), torch.stack([-c, s])])

    q = layout_permutation(d, "interleaved", "concatenated")
    M = offset_matrix(k, d, dtype=F64)
    return {
        "the rotation goes the wrong way (this is M_{-k} = M_k transposed): the block is [[cos, sin], [-sin, cos]]": M.T,
        "the exponent is i/d instead of 2i/d in the frequencies w_i = 10000^(-2i/d)": blockdiag(
            k * _frequencies(d, "i/d"), right
        ),
        "cos and sin are in each other's places inside the 2x2 block: [[cos, sin], [-sin, cos]]": blockdiag(
            k * _frequencies(d), swapped
        ),
        "this matrix works on the concatenated layout (pairs i and d/2+i); build it for interleaved pairs (2i, 2i+1)": (
            M[q][:, q]
        ),
    }


def offset_matrix_properties(fn) -> None:
    """Shape, float64, M_0 = I, M_k orthogonal, M_k @ PE[pos] = PE[pos + k] on the first positions."""
    M = call(fn, 5, 8, forbidden=FORBIDDEN_OFFSET)
    _expect_float64(M, "build_offset_matrix", "the check goes up to position 10 000")
    expect_shape(M, (8, 8), "build_offset_matrix(5, 8)")
    eye = torch.eye(8, dtype=F64)
    expect_close(
        call(fn, 0, 8, forbidden=FORBIDDEN_OFFSET),
        eye,
        "build_offset_matrix(0, 8) (no shift: the identity)",
        atol=1e-12,
    )
    expect_close(M @ M.T, eye, "M_5 @ M_5^T (a rotation: the identity)", atol=1e-9)
    pe = sinusoidal_encoding(40, 8, dtype=F64)
    expect_close(pe[:30] @ M.T, pe[5:35], "M_5 @ PE[pos] for pos = 0..29 (should be PE[pos + 5])", atol=1e-9)


def check_offset_matrix(fn) -> None:
    """M_k against course_utils for large, negative, zero offsets and d = 2; the shift up to position 10 000."""
    for k, d, on in [
        (1234, 130, "a large offset in a wide model"),
        (-7, 26, "a negative offset"),
        (0, 4, "offset 0"),
        (1, 2, "the smallest d_model"),
    ]:
        M = call(fn, k, d, forbidden=FORBIDDEN_OFFSET)
        _expect_float64(M, "build_offset_matrix", "the check goes up to position 10 000")
        expect_close(
            M, offset_matrix(k, d, dtype=F64), "build_offset_matrix", atol=1e-9, mistakes=offset_mistakes(k, d), on=on
        )
    big = sinusoidal_encoding(10_500, 26, dtype=F64)
    M = call(fn, 321, 26, forbidden=FORBIDDEN_OFFSET)
    pos = torch.tensor([0, 99, 5000, 10_000])
    expect_close(big[pos] @ M.T, big[pos + 321], "M_k @ PE[pos]", atol=1e-9, on="positions up to 10 000")


# ----------------------------------------------------------------------------- Exercise 3: recover k
def recover_mistakes(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The offsets that common slips read from a = PE[p], b = PE[p + k]."""
    w = _frequencies(a.shape[-1])
    raw = torch.atan2(b[0::2], b[1::2]) - torch.atan2(a[0::2], a[1::2])
    wrapped = torch.remainder(raw + math.pi, 2 * math.pi) - math.pi
    return {
        "the sign is flipped: subtract the angle of pe_a from the angle of pe_b (and use atan2(sin, cos))": -int(
            torch.round(wrapped[-1] / w[-1])
        ),
        "you read the fastest pair, which wraps around every 6.28 positions: use the slowest pair": int(
            torch.round(wrapped[0] / w[0])
        ),
        "the angle difference is not wrapped into (-pi, pi]: it jumps by 2 pi when an angle passes pi": int(
            torch.round(raw[-1] / w[-1])
        ),
    }


def expect_offset(fn, a: torch.Tensor, b: torch.Tensor, k: int, what: str, on: str | None = None) -> None:
    """recover_offset(a, b) must be the Python int k."""
    got = call(fn, a, b)
    expect(
        isinstance(got, int) and not isinstance(got, bool),
        f"recover_offset should return a Python int (use int(...)), got {type(got).__name__}.",
    )
    expect_equal(got, k, what, mistakes=recover_mistakes(a, b), on=on)


def check_recover_offset(fn) -> None:
    """Offsets up to 4999 either way, positions up to 12 000, d = 16 and 64, angles that wrap."""
    pe = sinusoidal_encoding(12_001, 16, dtype=F64)
    for p, k, on in [
        (9000, 3000, "a large positive offset far into the sequence"),
        (8000, -4321, "a large negative offset"),
        (55, 0, "two equal encodings"),
        (0, 1, "neighbouring positions"),
        (3, 60, "an offset where the fast pairs wrap around"),
        (9900, 50, "angles of the slowest pair on both sides of pi"),
    ]:
        expect_offset(fn, pe[p], pe[p + k], k, "recover_offset", on=on)
    expect_offset(fn, *sinusoidal_encoding(12_001, 64, dtype=F64)[[6000, 10_999]], 4999, "recover_offset", "d = 64")


# ----------------------------------------------------------------------------- Exercise 4: RoPE
def rope_mistakes(x: torch.Tensor, positions: torch.Tensor) -> dict:
    """What common slips give for rope(x, positions)."""
    d = x.shape[-1]

    def rotate(angle):  # angle (T, d/2): consecutive pairs, counter-clockwise
        even, odd = x[..., 0::2], x[..., 1::2]
        pairs = torch.stack([even * angle.cos() - odd * angle.sin(), even * angle.sin() + odd * angle.cos()], -1)
        return pairs.reshape(x.shape)

    pos = positions.to(F64)[:, None]
    to_inter, to_half = layout_permutation(d), layout_permutation(d, "interleaved", "concatenated")
    return {
        "the pairs turn clockwise (the sin terms have the wrong sign): y_2i = x_2i cos - x_2i+1 sin": apply_rope(
            x, -positions
        ),
        "this rotates dimension i with i + d/2 (the Llama/GPT-NeoX layout); rotate consecutive pairs (2i, 2i+1)": (
            apply_rope(x[..., to_inter], positions)[..., to_half]
        ),
        "the exponent is i/d instead of 2i/d in w_i = 10000^(-2i/d)": rotate(pos * _frequencies(d, "i/d")),
        "every pair turns by the same angle p; pair i must turn by p * w_i": rotate(pos.expand(-1, d // 2)),
        "the positions are ignored: each row must turn by the angle of its own position": apply_rope(x),
    }


def rope_properties(fn) -> None:
    """Shape and dtype kept on (B, h, T, d); position 0 unchanged; lengths kept; scores depend on the offset only."""
    g = torch.Generator().manual_seed(20)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=F64)  # (B, h, T, d_head)
    y = call(fn, x, torch.arange(7), forbidden=FORBIDDEN_ROPE)
    _expect_float64(y, "rope", "x is float64")
    expect_shape(y, x.shape, "rope on x of shape (2, 3, 7, 8)")
    expect_close(y[..., 0, :], x[..., 0, :], "rope at position 0 (no rotation)", atol=1e-12)
    expect_close(y.norm(dim=-1), x.norm(dim=-1), "the length of each rotated vector (a rotation keeps it)", atol=1e-9)
    q, k = x[0, 0, :1], x[0, 1, :1]  # (1, 8) each
    near = (
        call(fn, q, torch.tensor([2]), forbidden=FORBIDDEN_ROPE)
        * call(fn, k, torch.tensor([5]), forbidden=FORBIDDEN_ROPE)
    ).sum()
    far = (
        call(fn, q, torch.tensor([402]), forbidden=FORBIDDEN_ROPE)
        * call(fn, k, torch.tensor([405]), forbidden=FORBIDDEN_ROPE)
    ).sum()
    expect(
        abs(float(near - far)) < 1e-9,
        "rope(q, 2) . rope(k, 5) should equal rope(q, 402) . rope(k, 405): same offset, same score.",
    )


def check_rope(fn) -> None:
    """rope against apply_rope on (B, h, T, d_head) at far positions, d = 2, int32 positions, T = 1."""
    g = torch.Generator().manual_seed(4)
    for shape, positions, on in [
        ((3, 2, 7, 16), torch.arange(100, 107), "a (B, h, T, d_head) batch at positions past 100"),
        ((4, 2), torch.tensor([0, 3, 9000, 2]), "d = 2 with positions in no particular order, up to 9000"),
        ((2, 5, 6), torch.tensor([7, 1, 0, 4, 4], dtype=torch.int32), "int32 positions and an odd number of pairs"),
        ((3, 1, 10), torch.tensor([12]), "a single position (T = 1) in a batch of three"),
    ]:
        x = torch.randn(*shape, generator=g, dtype=F64)
        y = call(fn, x, positions, forbidden=FORBIDDEN_ROPE)
        _expect_float64(y, "rope", "x is float64")
        expect_close(y, apply_rope(x, positions), "rope", atol=1e-9, mistakes=rope_mistakes(x, positions), on=on)


# ----------------------------------------------------------------------------- Exercise 5: attention with RoPE
def _reference_attention(x: torch.Tensor, qkv: nn.Linear, proj: nn.Linear, n_heads: int) -> torch.Tensor:
    """The course's GPT attention (rope=True) with these weights: (B, T, d_model) -> (B, T, d_model)."""
    B, T, D = x.shape
    bias = qkv.bias is not None
    config = GPTConfig(vocab_size=1, max_len=T, n_layers=1, n_heads=n_heads, d_model=D, rope=True, bias=bias)
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the notebook's stream alone
        attn = CausalSelfAttention(config).to(x.dtype).eval()
    attn.c_attn.load_state_dict(qkv.state_dict())
    attn.c_proj.load_state_dict(proj.state_dict())
    with torch.no_grad():
        return attn(x)


def _slipped_attention(x, qkv, proj, n_heads, *, rotate="qk", rope=apply_rope, heads="split", causal=True, scale=None):
    """The attention with one slip: which of q, k, v turn, the rotation, the head split, the mask, the scale."""
    B, T, D = x.shape
    with torch.no_grad():
        q, k, v = qkv(x).split(D, dim=-1)  # 3 x (B, T, D)
        if heads == "rope first":  # rotate the whole d_model-vector, then split
            q, k = rope(q), rope(k)
        if heads == "view":  # (B, T, D) read as (B, h, T, d_head): tokens mixed into heads
            q, k, v = (t.reshape(B, n_heads, T, D // n_heads) for t in (q, k, v))
        else:
            q, k, v = (split_heads(t, n_heads) for t in (q, k, v))  # (B, h, T, d_head)
        if heads != "rope first":
            q, k, v = (rope(t) if name in rotate else t for name, t in zip("qkv", (q, k, v)))
        q = q * math.sqrt(q.shape[-1]) / math.sqrt(scale) if scale else q
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=causal)
        return proj(merge_heads(out))


def rope_attention_mistakes(x: torch.Tensor, qkv: nn.Linear, proj: nn.Linear, n_heads: int) -> dict:
    """What common slips give for rope_attention(x, qkv, proj, n_heads)."""
    D = x.shape[-1]
    to_inter, to_half = (
        layout_permutation(D // n_heads),
        layout_permutation(D // n_heads, "interleaved", "concatenated"),
    )

    def slip(**how):
        return _slipped_attention(x, qkv, proj, n_heads, **how)

    return {
        "the values are rotated too; RoPE turns only the queries and the keys": slip(rotate="qkv"),
        "only the queries are rotated; turn the keys by their positions too": slip(rotate="q"),
        "no position is used at all: rotate q and k after splitting the heads": slip(rotate=""),
        "q and k were rotated as whole d_model-vectors before splitting the heads; rotate each head's (B, h, T, d_head) "
        "queries and keys, with w_i = 10000^(-2i/d_head)": slip(heads="rope first"),
        "the heads are made with a reshape to (B, n_heads, T, d_head), which mixes tokens into heads; reshape to "
        "(B, T, n_heads, d_head) and then transpose": slip(heads="view"),
        "there is no causal mask: a query must not see the keys after it": slip(causal=False),
        "the scores are not divided by sqrt(d_head)": slip(scale=1.0),
        "the scores are divided by sqrt(d_model); divide by the head size sqrt(d_head)": slip(scale=float(D)),
        "the rotation pairs dimension i with i + d/2 (the Llama layout); rotate consecutive pairs (2i, 2i+1)": slip(
            rope=lambda t: apply_rope(t[..., to_inter])[..., to_half]  # the Llama layout, through a permutation
        ),
    }


def _layers(d_model: int, seed: int, dtype=F64, bias: bool = True) -> tuple[nn.Linear, nn.Linear]:
    """Random qkv (d_model -> 3 d_model) and proj (d_model -> d_model) layers, the same for the same seed.

    Frozen (no autograd graph to copy) and made under fork_rng, so grading leaves the notebook's random stream alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        qkv = nn.Linear(d_model, 3 * d_model, bias=bias, dtype=dtype).requires_grad_(False)
        proj = nn.Linear(d_model, d_model, bias=bias, dtype=dtype).requires_grad_(False)
    return qkv, proj


def rope_attention_properties(fn) -> None:
    """Shape and dtype kept; causal (a later token changes no earlier output); sequences of a batch independent."""
    g = torch.Generator().manual_seed(5)
    qkv, proj = _layers(8, seed=5)
    x = torch.randn(2, 6, 8, generator=g, dtype=F64)
    y = call(fn, x, qkv, proj, 2, forbidden=FORBIDDEN_ATTENTION)
    expect(isinstance(y, torch.Tensor), f"rope_attention should return a torch.Tensor, got {type(y).__name__}.")
    expect_shape(y, (2, 6, 8), "rope_attention on x of shape (B, T, d_model) = (2, 6, 8)")
    expect(y.dtype == x.dtype, f"rope_attention should return x's dtype ({x.dtype}), got {y.dtype}.")
    changed = x.clone()
    changed[:, -1] += 1.0  # change the last token only
    y2 = call(fn, changed, qkv, proj, 2, forbidden=FORBIDDEN_ATTENTION)
    expect(
        torch.allclose(y2[:, :-1], y[:, :-1], atol=1e-9),
        "rope_attention: changing only the last token changed the outputs before it, so a query sees a later token. "
        "Check the causal mask and how the heads are split.",
    )
    alone = call(fn, x[1:], qkv, proj, 2, forbidden=FORBIDDEN_ATTENTION)
    expect_close(alone, y[1:], "the second sequence run alone (it should not depend on the first)")


def check_rope_attention(fn) -> None:
    """rope_attention against the GPT's CausalSelfAttention(rope=True) on several shapes, float32, huge scores."""
    g = torch.Generator().manual_seed(6)
    cases = [  # (B, T, d_model, n_heads, dtype, scale of x, what kind of input)
        (3, 7, 12, 3, F64, 1.0, "a batch of 3, an odd length, 3 heads of size 4"),
        (1, 9, 16, 2, F64, 1.0, "one sequence of 9 tokens, 2 heads of size 8"),
        (2, 1, 8, 4, F64, 1.0, "sequences of a single token"),
        (2, 5, 8, 2, torch.float32, 1.0, "float32 inputs"),
        (2, 6, 8, 1, F64, 100.0, "inputs so large that the scores are in the thousands"),
    ]
    for seed, (B, T, D, h, dtype, scale, on) in enumerate(cases):
        qkv, proj = _layers(D, seed=100 + seed, dtype=dtype)
        x = scale * torch.randn(B, T, D, generator=g, dtype=F64).to(dtype)
        try:
            y = call(fn, x, qkv, proj, h, forbidden=FORBIDDEN_ATTENTION)
        except GradingError as e:
            if dtype == F64 or "Double" not in str(e):
                raise
            raise GradingError(f"{e} (on {on}): keep x's dtype; cast the cos and sin tables to x.dtype.") from None
        expect(isinstance(y, torch.Tensor), f"rope_attention should return a torch.Tensor, got {type(y).__name__}.")
        expect(
            y.dtype == dtype,
            f"rope_attention should return x's dtype (on {on}: {dtype} in, {y.dtype} out); "
            "cast the cos and sin tables to x.dtype.",
        )
        tol = 1e-4 if dtype == torch.float32 else 1e-8
        ref = _reference_attention(x, qkv, proj, h)
        expect_close(
            y,
            ref,
            "rope_attention",
            atol=tol * max(1.0, scale),
            rtol=tol,
            mistakes=rope_attention_mistakes(x, qkv, proj, h),
            on=on,
        )

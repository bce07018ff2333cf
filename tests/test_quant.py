"""course_utils.quant against the formulas of the lecture notes (Deep Learning ch. 7) and the QLoRA paper's NF4 table."""

import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.quant import (
    NF4_PUBLISHED,
    QuantizedEmbedding,
    QuantizedLinear,
    absmax_dequantize,
    absmax_quantize,
    bits_per_parameter,
    blockwise_dequantize,
    blockwise_quantize,
    double_dequantize,
    double_quantize,
    nf4_code_values,
    nf4_dequantize,
    nf4_quantize,
    pack_4bit,
    quantize_linears,
    stored_bytes,
    unpack_4bit,
)


def test_absmax_matches_the_seed_formula():
    x = torch.tensor([0.3, -2.0, 1.1, 0.0, 0.0157])
    q, c = absmax_quantize(x)
    assert q.dtype == torch.int8 and q.shape == x.shape
    assert c.item() == pytest.approx(127 / 2.0)
    assert q.tolist() == torch.round(127 / 2.0 * x).to(torch.int8).tolist()
    assert q.tolist() == [19, -127, 70, 0, 1]
    torch.testing.assert_close(absmax_dequantize(q, c), q.float() / c)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=200))
def test_absmax_round_trip_error_is_at_most_half_a_step(values):
    x = torch.tensor(values, dtype=torch.float32)
    q, c = absmax_quantize(x)
    assert int(q.abs().max()) <= 127
    step = x.abs().max() / 127
    assert (absmax_dequantize(q, c) - x).abs().max() <= step / 2 + 1e-6 * (1 + x.abs().max())


def test_all_zero_input_quantizes_to_zero():
    q, c = absmax_quantize(torch.zeros(4))
    assert q.tolist() == [0, 0, 0, 0] and torch.isfinite(c)
    assert absmax_dequantize(q, c).tolist() == [0.0] * 4


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        absmax_quantize(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        absmax_quantize([1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        absmax_quantize(torch.tensor([]))
    with pytest.raises(TypeError, match="int8"):
        absmax_dequantize(torch.tensor([1.0]), 1.0)
    with pytest.raises(ValueError, match="blocksize"):
        blockwise_quantize(torch.randn(10), blocksize=0)
    q, s = blockwise_quantize(torch.randn(100), 10)
    with pytest.raises(ValueError, match="same blocksize"):
        blockwise_dequantize(q, s, 20)


def test_blockwise_equals_absmax_applied_block_by_block():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 30, generator=g)  # 210 values: 3 blocks of 64 and a partial block of 18
    q, scales = blockwise_quantize(x, 64)
    assert q.shape == x.shape and scales.shape == (4,)
    flat = x.reshape(-1)
    for b in range(4):
        qb, cb = absmax_quantize(flat[64 * b : 64 * (b + 1)])
        assert torch.equal(q.reshape(-1)[64 * b : 64 * (b + 1)], qb)
        assert scales[b].item() == pytest.approx(cb.item())
    err = (blockwise_dequantize(q, scales, 64) - x).abs()
    assert err.max() <= (x.abs().max() / 127) / 2 + 1e-6


def test_blocks_contain_an_outlier():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4096, generator=g)
    x[17] = 100.0  # one outlier
    whole = (absmax_dequantize(*absmax_quantize(x)) - x).abs().mean()
    blocks = (blockwise_dequantize(*blockwise_quantize(x, 64), 64) - x).abs().mean()
    assert blocks < whole / 10, (whole, blocks)


def test_nf4_code_values_equal_the_published_table():
    ours = nf4_code_values()
    assert ours.shape == (16,)
    torch.testing.assert_close(ours, torch.tensor(NF4_PUBLISHED), atol=1e-4, rtol=0)
    assert ours[7] == 0 and ours[0] == -1 and ours[-1] == 1 and bool((ours.diff() > 0).all())


def test_nf4_picks_the_nearest_code():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 64, generator=g)
    codes, absmax = nf4_quantize(x, 64)
    code = torch.tensor(NF4_PUBLISHED)
    normed = x / x.abs().amax(dim=1, keepdim=True)
    nearest = (normed[..., None] - code).abs().argmin(-1)
    assert torch.equal(codes.view(3, 64).long(), nearest)
    torch.testing.assert_close(nf4_dequantize(codes, absmax, x.shape), code[nearest] * absmax[:, None])


def test_nf4_beats_uniform_4bit_on_normal_weights():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64 * 500, generator=g)
    nf4_err = (nf4_dequantize(*nf4_quantize(x, 64), x.shape) - x).square().mean()
    blocks = x.view(-1, 64)
    c = 7 / blocks.abs().amax(1, keepdim=True)  # absmax int4: levels -7..7
    int4_err = ((torch.round(blocks * c) / c).reshape(-1) - x).square().mean()
    assert nf4_err < int4_err, (nf4_err, int4_err)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=1, max_size=99))
def test_pack_unpack_round_trip(values):
    codes = torch.tensor(values, dtype=torch.uint8)
    packed = pack_4bit(codes)
    assert packed.numel() == (len(values) + 1) // 2
    assert torch.equal(unpack_4bit(packed, len(values)), codes)


def test_pack_layout_and_errors():
    assert pack_4bit(torch.tensor([1, 2, 15], dtype=torch.uint8)).tolist() == [0x12, 0xF0]
    with pytest.raises(ValueError, match="0..15"):
        pack_4bit(torch.tensor([16], dtype=torch.uint8))


def test_double_quantization_error_and_memory():
    g = torch.Generator().manual_seed(4)
    absmax = torch.rand(1000, generator=g) * 3 + 0.5
    q, s, off = double_quantize(absmax, 256)
    assert q.dtype == torch.int8 and s.numel() == 4
    err = (double_dequantize(q, s, off, 256) - absmax).abs().max()
    assert err <= (absmax - absmax.mean()).abs().max() / 127 / 2 + 1e-6  # half an int8 step of the centred constants
    assert err / absmax.min() < 0.02
    assert bits_per_parameter(4, 64, double_quant=False) == 4.5
    assert bits_per_parameter(4, 64, double_quant=True) == pytest.approx(4.127, abs=1e-3)  # QLoRA: 4.127 bits


@pytest.mark.parametrize(
    "fmt,dq,bytes_per_weight", [("nf4", False, 0.5625), ("nf4", True, 0.5159), ("int8", False, 1.0625)]
)
def test_quantized_linear_stores_little_and_matches_dequantized_math(fmt, dq, bytes_per_weight):
    torch.manual_seed(5)
    lin = torch.nn.Linear(256, 512)
    ql = QuantizedLinear.from_linear(lin, fmt=fmt, blocksize=64, double_quant=dq)
    assert ql.weight_nbytes() / lin.weight.numel() == pytest.approx(bytes_per_weight, abs=2e-4)
    w = ql.dequantized_weight()
    assert w.shape == lin.weight.shape
    tol = {"nf4": 0.05, "int8": 4e-3}[fmt]  # nn.Linear weights are uniform, not normal: NF4 is a poor fit
    assert (w - lin.weight).abs().mean() < tol * lin.weight.abs().max()
    x = torch.randn(3, 5, 256)
    torch.testing.assert_close(ql(x), torch.nn.functional.linear(x, w, lin.bias))
    assert not any(p.requires_grad for p in ql.parameters())
    assert stored_bytes(ql) == ql.weight_nbytes() + 512 * 4


def test_quantize_linears_replaces_in_place_and_skips():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    fp32 = stored_bytes(model)
    names = quantize_linears(model, skip=("2",))
    assert names == ["0"] and isinstance(model[0], QuantizedLinear) and isinstance(model[2], torch.nn.Linear)
    assert stored_bytes(model) < fp32
    with pytest.raises(TypeError, match="nn.Linear"):
        QuantizedLinear.from_linear(torch.nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError, match="fmt"):
        QuantizedLinear.from_linear(torch.nn.Linear(4, 4), fmt="fp8")


def test_quantized_embedding_dequantizes_only_the_rows_it_looks_up():
    torch.manual_seed(7)
    emb = torch.nn.Embedding(50, 128)
    qe = QuantizedEmbedding(emb, blocksize=64, double_quant=False)
    codes, absmax = nf4_quantize(emb.weight.detach(), 64)
    table = nf4_dequantize(codes, absmax, emb.weight.shape)
    ids = torch.tensor([[3, 0, 49], [7, 7, 1]])
    torch.testing.assert_close(qe(ids), table[ids])
    torch.testing.assert_close(qe.weight, table)
    assert qe.weight_nbytes() == 50 * 128 // 2 + 50 * 2 * 4
    dq = QuantizedEmbedding(emb)  # double quantization: close to the single-quantized table
    assert (dq(ids) - table[ids]).abs().max() < 0.01 * emb.weight.abs().max()
    with pytest.raises(ValueError, match="multiple"):
        QuantizedEmbedding(torch.nn.Embedding(5, 100), blocksize=64)


def test_quantize_linears_with_embeddings_is_under_a_fifth_of_fp32():
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 128), torch.nn.Linear(128, 128))
    fp32 = stored_bytes(model)
    quantize_linears(model, embeddings=True)
    assert isinstance(model[0], QuantizedEmbedding)
    assert stored_bytes(model) < 0.2 * fp32

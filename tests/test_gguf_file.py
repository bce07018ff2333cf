"""course_utils.gguf_file against the `gguf` package: the same metadata, the same tensor table, every tensor
dequantized bit for bit, on a file written here (every type we read) and on SmolLM2's real file."""

import doctest

import course_utils  # noqa: F401
import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

import course_utils.gguf_file as gguf_file
from course_utils.gguf_file import BLOCK_BYTES, dequantize, read_gguf
from course_utils.language_models import smollm_files

TYPES = {
    "F32": gguf.GGMLQuantizationType.F32,
    "F16": gguf.GGMLQuantizationType.F16,
    "Q4_0": gguf.GGMLQuantizationType.Q4_0,
    "Q4_1": gguf.GGMLQuantizationType.Q4_1,
    "Q8_0": gguf.GGMLQuantizationType.Q8_0,
}


def test_doctests():
    assert doctest.testmod(gguf_file).failed == 0


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A GGUF file with metadata of every kind and one tensor of every type, written by the gguf package."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("test.u32", 7)
    w.add_int64("test.i64", -3)
    w.add_float32("test.f32", 0.25)
    w.add_float64("test.f64", 1e-300)
    w.add_bool("test.flag", True)
    w.add_string("test.name", "Grüße ✓")
    w.add_array("test.words", ["a", "bc", ""])
    w.add_array("test.numbers", [1, 2, 3])
    rng = np.random.default_rng(0)
    for k, (name, qtype) in enumerate(TYPES.items()):
        x = (rng.standard_normal((3 + k, 64)) * (k + 1)).astype(np.float32)
        x[0, :32] = 5.0  # a constant block: zero range for Q4_1
        if name == "F16":
            w.add_tensor(f"t.{name}", x.astype(np.float16))
        elif name == "F32":
            w.add_tensor(f"t.{name}", x)
        else:
            q = gguf_quantize(x, qtype)
            w.add_tensor(f"t.{name}", q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def assert_same_as_gguf(path):
    ours, ref = read_gguf(path), gguf.GGUFReader(str(path))
    for key, field in ref.fields.items():
        if not key.startswith("GGUF."):
            assert ours.metadata[key] == field.contents(), key
    assert list(ours.tensors) == [t.name for t in ref.tensors]
    for t in ref.tensors:
        info = ours.tensors[t.name]
        assert info.type == t.tensor_type.name and info.n_bytes == t.n_bytes, t.name
        assert info.shape == tuple(int(d) for d in reversed(t.shape)), t.name
        mine = ours.tensor(t.name)
        theirs = torch.from_numpy(np.array(gguf_dequantize(t.data, t.tensor_type))).float()
        assert mine.dtype == torch.float32 and mine.shape == info.shape
        assert torch.equal(mine.view(torch.int32), theirs.reshape(info.shape).view(torch.int32)), t.name
    return ours


def test_every_type_bit_for_bit(written):
    ours = assert_same_as_gguf(written)
    assert {i.type for i in ours.tensors.values()} == set(TYPES)
    assert ours.metadata["test.name"] == "Grüße ✓" and ours.metadata["test.words"] == ["a", "bc", ""]
    assert ours.version == 3 and "llama" in repr(ours)


def test_q4_1_block_by_hand():
    """One Q4_1 block: d = 0.5, m = -2, nibbles 0..15 in the low halves, 15..0 in the high halves."""
    d, m = np.float16(0.5).tobytes(), np.float16(-2.0).tobytes()
    low, high = np.arange(16), 15 - np.arange(16)
    block = np.frombuffer(d + m + bytes((low | (high << 4)).astype(np.uint8)), dtype=np.uint8)
    x = dequantize(block, "Q4_1", (32,))
    assert torch.equal(x[:16], 0.5 * torch.arange(16.0) - 2) and torch.equal(
        x[16:], 0.5 * (15 - torch.arange(16.0)) - 2
    )


@pytest.mark.parametrize("kind", sorted(BLOCK_BYTES))
def test_dequantize_refuses_a_wrong_size(kind):
    block_bytes, per_block = BLOCK_BYTES[kind]
    with pytest.raises(ValueError, match="cannot hold"):
        dequantize(np.zeros(block_bytes * 2, np.uint8), kind, (per_block * 3,))


def test_clear_errors(tmp_path, written):
    with pytest.raises(ValueError, match="unknown type"):
        dequantize(np.zeros(18, np.uint8), "Q5_K", (32,))
    with pytest.raises(FileNotFoundError, match="no file"):
        read_gguf(tmp_path / "missing.gguf")
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(ValueError, match="not a GGUF"):
        read_gguf(tmp_path / "text.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(written.read_bytes()[:60])
    with pytest.raises(ValueError, match="truncated"):
        read_gguf(cut)
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        read_gguf(written).tensor("nope")


def test_smollm2_file_bit_for_bit():
    folder, name = smollm_files()
    if folder is None:
        pytest.skip(name)
    ours = assert_same_as_gguf(folder / name)
    assert {i.type for i in ours.tensors.values()} == {"F32", "Q4_1", "Q8_0"}
    assert ours.metadata["llama.attention.head_count_kv"] == 3

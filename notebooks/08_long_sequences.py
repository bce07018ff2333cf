# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 08 · Long sequences: efficient attention
#
# Attention compares every token with every other token. For a 70-word sentence that is
# nothing; for a 4,000-token article, a 100,000-token book or an image cut into a thousand
# tokens, the $n \times n$ score matrix becomes the whole cost. This notebook measures that
# wall and then takes four ways around it, each built from scratch and checked against exact
# attention.
#
# **In this notebook you will**
# - measure how the time and memory of full attention grow with the sequence length $n$,
# - build BigBird's three sparse patterns (sliding window, global tokens, random blocks) as masks, and count the pairs they keep,
# - write block-sparse attention that *computes only the attended blocks*, and find the length from which it beats masking,
# - write FlashAttention's trick, tiles and the online softmax: exact attention in $O(n)$ memory,
# - add a KV cache to a small GPT and measure how much faster it generates,
# - turn images into sequences of discrete tokens with a k-means codebook, the first step of text-to-image models like Parti.
#
# **Prerequisites:** notebook 01 (scaled dot-product attention, masks with `True` = may attend),
# notebook 05 (a GPT generates one token at a time), the softmax of notebook 00.
#
# **Run time** on an idle 2-core CPU (papermill, 2026-11-23): SMOKE ≈ 16 s, full 2 min 34 s.
# On the same machine shared with other jobs (load average 8–12) full mode took 12.5 min, so
# expect the timings printed below to vary with load; the ratios (speed-ups, crossover) move less.
# No GPU was measured.

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # tiny sizes, every code path, seconds on a CPU
SEED = 0
DEVICE = "auto"  # "auto" = CUDA, then Apple MPS, then CPU; or "cpu", "cuda", "mps"

# 1. the quadratic wall: full attention timed and weighed at these lengths (batch 1, HEADS heads)
WALL_NS = [256, 512, 1024] if SMOKE else [256, 512, 1024, 2048, 4096]
HEADS = 2
D_HEAD = 64
REPEATS = 1 if SMOKE else 3  # timings are the best of REPEATS runs
# 2./3. BigBird: blocks of BLOCK tokens; window of WINDOW blocks each side, N_GLOBAL global blocks, N_RANDOM random
BLOCK = 64
WINDOW, N_GLOBAL, N_RANDOM = 1, 2, 3  # BigBird-base's pattern
PAIRS_NS = [512, 1024, 2048, 4096, 8192, 16384]  # only counted, cheap
SPARSE_NS = [256, 512, 1024] if SMOKE else [256, 512, 1024, 2048, 4096]
# 4. tiled attention: memory measured at these lengths (one head)
MEM_NS = [1024, 2048] if SMOKE else [1024, 2048, 4096, 8192, 16384]
TILE = 128
# 5. the KV cache: notebook 05's GPT (course_utils.gpt) trained briefly on Austen's characters, then generation timed
GPT_LAYERS, GPT_HEADS, GPT_EMBD = 4, 4, 128
TRAIN_STEPS = 10 if SMOKE else 200
TRAIN_BATCH, TRAIN_CONTEXT = (8, 32) if SMOKE else (16, 128)
LR_FACTOR, WARMUP = 0.35, 50  # peak lr = factor / sqrt(d_model * warmup), as in notebook 05
KV_LENGTHS = [16, 32] if SMOKE else [64, 128, 256, 512]  # tokens generated
KV_REPEATS = 1 if SMOKE else 2  # generation timings: best of KV_REPEATS runs
PROMPT = "It is a truth universally acknowledged"
# 6. images as tokens
PATCH = 4
CODEBOOK_SIZES = [8, 32] if SMOKE else [16, 64, 256]
KMEANS_PATCHES = 3_000 if SMOKE else 50_000
KMEANS_ITERS = 5 if SMOKE else 25
N_TRAIN_IMAGES = 1_000 if SMOKE else 20_000
IMG_GPT_STEPS = 10 if SMOKE else 200  # a small GPT trained on (class token, 49 image tokens) sequences
IMG_BATCH = 16 if SMOKE else 32
IMG_LAYERS = 2
IMG_TEMPERATURE = 1.0

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from course_utils.attention import causal_mask, scaled_dot_product_attention
from course_utils.device import get_device, seed_everything

device = get_device(DEVICE)
seed_everything(SEED)
NOTEBOOK_START = time.perf_counter()
print(f"device: {device}, SMOKE: {SMOKE}, torch threads: {torch.get_num_threads()}")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The quadratic wall
#
# Self-attention scores every query against every key, $E = QK^\top/\sqrt{d}$, an
# $n \times n$ matrix per head. With $n$ tokens of width $d$ (the notation of
# Vaswani et al. 2017, Table 1):
#
# $$\text{operations} \approx n^2 d, \qquad \text{activations} \approx n^2 + n d .$$
#
# For a sentence ($n = 70$, $d = 1000$) that is $4.9$ million operations, *cheaper* than the
# $n d^2 = 70$ million of a recurrent or convolutional layer. But $n^2$ wins as soon as
# $n > d$: at 4,096 tokens one head's float32 score matrix weighs 64 MiB; at 100,000
# tokens, 37 GiB, per head, per layer.


# %% slideshow={"slide_type": "subslide"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
def attention_cost(n, d):
    """(n^2 d operations, n d^2 operations, bytes of one float32 n x n matrix)."""
    return n * n * d, n * d * d, 4 * n * n


n, d = 70, 1000
ops_attn, ops_rnn, _ = attention_cost(n, d)
print(f"a sentence, n={n}, d={d}: attention n^2 d = {ops_attn / 1e6:.1f} M, recurrent n d^2 = {ops_rnn / 1e6:.0f} M")
for n in (512, 4096, 16_384, 100_000):
    ops, _, size = attention_cost(n, 64)
    print(f"n = {n:>7,}: {ops / 1e9:10.1f} GFLOP of scores per head (d = 64), score matrix {size / 2**20:12,.0f} MiB")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Measured, not just counted: our attention from notebook 01
# (`course_utils.attention.scaled_dot_product_attention`, which returns the weights so you can
# look at them) timed at a few lengths, with its *peak extra memory*, by notebook 01's
# `course_utils.measure.time_and_memory` (best-of-`REPEATS` time; memory from PyTorch's profiler, which
# records every tensor allocation: PyTorch tensors on the CPU live outside Python's allocator,
# so `tracemalloc` cannot see them).

# %% slideshow={"slide_type": "fragment"}
from course_utils.measure import best_time, time_and_memory  # best of a few calls: others only ever add time


def qkv(n, heads=HEADS, d=D_HEAD, seed=SEED):
    g = torch.Generator().manual_seed(seed + n)
    return tuple(torch.randn(1, heads, n, d, generator=g) for _ in range(3))


wall = []
with torch.no_grad():
    for n in WALL_NS:
        q, k, v = qkv(n)
        seconds, peak = time_and_memory(lambda: scaled_dot_product_attention(q, k, v), "cpu", REPEATS)
        wall.append((n, seconds, peak))
        print(
            f"n = {n:>5}: {seconds * 1e3:8.1f} ms, peak extra memory "
            f"{'n/a' if peak is None else f'{peak / 2**20:7.1f} MiB'} (the weights alone: {HEADS * 4 * n * n / 2**20:6.1f} MiB)"
        )

# %% slideshow={"slide_type": "subslide"}
ns = [r[0] for r in wall]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].loglog(ns, [r[1] * 1e3 for r in wall], "o-", label="measured")
axes[0].loglog(ns, [wall[-1][1] * 1e3 * (n / ns[-1]) ** 2 for n in ns], "k--", label=r"$\propto n^2$")
axes[0].set(xlabel="sequence length n", ylabel="time (ms)", title="full attention: time")
if wall[0][2] is not None:
    axes[1].loglog(ns, [r[2] / 2**20 for r in wall], "o-", color="tab:red", label="measured peak")
    axes[1].loglog(ns, [HEADS * 4 * n * n / 2**20 for n in ns], "k--", label=r"$h \cdot 4n^2$ bytes")
axes[1].set(xlabel="sequence length n", ylabel="MiB", title="full attention: peak extra memory")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()
if wall[0][2] is not None:
    growth = wall[-1][2] / wall[-2][2]
    assert 3.0 < growth < 5.0, f"doubling n should about quadruple the memory (n^2), measured x{growth:.2f}"
    print(f"doubling n from {ns[-2]} to {ns[-1]} multiplied the peak memory by {growth:.2f} (n^2 predicts 4)")


# %% [markdown] slideshow={"slide_type": "notes"}
# Start from the lecture's arithmetic (CS 585, Betke): for sentences attention is cheap; the crossover with
# recurrent layers is n = d. Then the measured curves: both slopes are 2 on log-log axes.
# The memory is the real wall on a GPU (80 GB fill up at ~100k tokens per head per layer);
# time is the wall on a CPU. Everything else in the notebook is a way around these two lines.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. BigBird: attend to a few keys, chosen well
#
# BigBird (Zaheer et al., 2020) keeps the attention formula but lets token $i$ look only at
# a set of neighbours $N(i)$, the edges of a sparse graph:
#
# $$\operatorname{ATTN}(X)_i = x_i + \sum_{h=1}^{H} \sigma\!\left(Q_h(x_i)\, K_h(X_{N(i)})^\top\right) V_h(X_{N(i)}) .$$
#
# Three kinds of edges, each with a reason:
# - **sliding window**: the $w$ tokens on each side. Most of what a word needs is nearby.
# - **global tokens**: a few tokens (like `[CLS]`) see everyone and are seen by everyone, so
#   any two tokens are at most two hops apart.
# - **random**: a few random keys per query; random graphs are well connected (information
#   spreads in $O(\log n)$ hops), and the paper proves the union is as expressive as full attention.
#
# With $w$, $g$ and $r$ fixed, each query sees a constant number of keys: the cost grows as
# $n$, not $n^2$. As everywhere in this course, a mask is boolean with `True` = may attend.
#
# ### Exercise 1: the sliding-window mask
# Write `window_mask(n, window)`: an `(n, n)` boolean tensor where query $i$ may attend to key
# $j$ exactly when $|i - j| \le$ `window`. The window is **symmetric** (a token sees `window`
# tokens on *each* side, and itself), and `window = 0` leaves only the diagonal.


# %% nbgrader={"grade": false, "grade_id": "window-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    ### BEGIN SOLUTION
    pos = torch.arange(n)
    return (pos[:, None] - pos[None, :]).abs() <= window
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "window-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.grading import call, expect, expect_equal


def _reference(n, w):
    return torch.tensor([[abs(i - j) <= w for j in range(n)] for i in range(n)])


def _mistakes(n, w):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return {
        "an off-by-one: the window must include keys exactly `window` away (|i - j| <= window, not <)": (i - j).abs()
        < w,
        "an off-by-one: the window is one key too wide on each side (use |i - j| <= window)": (i - j).abs() <= w + 1,
        "a window that only looks back (a causal window); BigBird's window is symmetric, use |i - j|": (i - j >= 0)
        & (i - j <= w),
        "a window that only looks ahead; it must be symmetric, use the absolute value |i - j|": (j - i >= 0)
        & (j - i <= w),
    }


m = call(window_mask, 6, 1)
expect(
    isinstance(m, torch.Tensor) and m.dtype == torch.bool,
    "window_mask should return a boolean tensor (True = may attend), e.g. from a comparison like `<=`.",
)
expect_equal(m, _reference(6, 1), "window_mask(6, 1)", mistakes=_mistakes(6, 1))
print("visible tests passed")
### BEGIN HIDDEN TESTS
for n, w in ((10, 3), (5, 0), (4, 7), (1, 2)):
    expect_equal(call(window_mask, n, w), _reference(n, w), f"window_mask({n}, {w})", mistakes=_mistakes(n, w))
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The module `course_utils.sparse` carries the same mask (`sliding_window_mask`) and the
# other two patterns. BigBird works with **blocks** of tokens (64 in the paper): a *layout*
# says which key blocks each query block sees, and `expand_layout` turns it into a token mask.
# Pictures of the three patterns and their union, for 16 blocks:

# %% slideshow={"slide_type": "fragment"}
from course_utils.sparse import (
    attended_pairs,
    bigbird_layout,
    expand_layout,
    global_layout,
    random_layout,
    sliding_window_mask,
    window_layout,
)
from course_utils.tools.grading import use_or_reference

assert torch.equal(use_or_reference(window_mask, sliding_window_mask)(50, 4), sliding_window_mask(50, 4)), (
    "the exercise and the module must agree"
)


def show_patterns(n_blocks=16, window=WINDOW, n_global=N_GLOBAL, n_random=N_RANDOM, block=4):
    """The three BigBird patterns and their union as token masks (n_blocks blocks of `block` tokens)."""
    g = torch.Generator().manual_seed(SEED)
    win, glo = window_layout(n_blocks, window), global_layout(n_blocks, n_global)
    rnd = random_layout(n_blocks, n_random, g, exclude=win | glo)
    parts = {"random": rnd, "sliding window": win, "global": glo, "BigBird = union": win | glo | rnd}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    for ax, (name, layout) in zip(axes, parts.items()):
        mask = expand_layout(layout, block)
        ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.3)
        ax.set(
            title=f"{name}\n{attended_pairs(mask) / mask.numel():.0%} of pairs",
            xticks=[],
            yticks=[],
            xlabel="key",
            ylabel="query" if name == "random" else None,
        )
    plt.tight_layout()
    plt.show()


show_patterns()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Move the knobs (in JupyterLab): a wider window fills the diagonal band, each global block adds
# a full row and column, each random block one more square per row.

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.widgets import interact

interact(show_patterns, n_blocks=(4, 32, 1), window=(0, 4, 1), n_global=(0, 4, 1), n_random=(0, 6, 1))


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Attended pairs grow linearly.** Count the pairs BigBird keeps as $n$ doubles (blocks of
# 64, BigBird-base's pattern: 3 window blocks, 2 global, 3 random), against the $n^2$ of full attention.


# %% slideshow={"slide_type": "fragment"}
def bigbird_pairs(n, block=BLOCK):
    layout = bigbird_layout(n // block, WINDOW, N_GLOBAL, N_RANDOM, torch.Generator().manual_seed(SEED))
    return int(layout.sum()) * block * block  # = attended_pairs(expand_layout(layout, block)), cheaper


pairs = [bigbird_pairs(n) for n in PAIRS_NS]
assert pairs[0] == attended_pairs(
    expand_layout(
        bigbird_layout(PAIRS_NS[0] // BLOCK, WINDOW, N_GLOBAL, N_RANDOM, torch.Generator().manual_seed(SEED)), BLOCK
    )
)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(PAIRS_NS, [n * n for n in PAIRS_NS], "k--", label=r"full attention, $n^2$")
ax.loglog(PAIRS_NS, pairs, "o-", label="BigBird")
ax.set(xlabel="sequence length n", ylabel="attended (query, key) pairs", title="cost of one attention layer")
ax.legend()
plt.show()
for n, p in zip(PAIRS_NS, pairs):
    print(f"n = {n:>6,}: {p:>13,} pairs = {p / n:6.0f} keys per query = {p / n**2:6.1%} of full attention")
ratios = [b / a for a, b in zip(pairs[1:], pairs[2:])]
assert all(1.8 < r < 2.2 for r in ratios), f"doubling n should double the pairs (linear), got ratios {ratios}"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Does a sparse model lose accuracy? Not on the long-document tasks BigBird was built for:
# seeing 4,096 tokens instead of 512 more than pays for the missing pairs. Test-set results
# from Zaheer et al. (2020), Tables 3 and 5:
#
# | task (metric) | Longformer | BigBird-ETC | best other model |
# |---|---|---|---|
# | HotpotQA answer F1 | 81.2 | 81.2 | 82.2 (HGN) |
# | Natural Questions long answer F1 | – | **77.8** | 77.1 (ReflectionNet) |
# | TriviaQA full F1 | 77.3 | **84.5** | 84.4 (Fusion-in-Decoder) |
# | WikiHop accuracy | 81.9 | **82.3** | 78.3 (MRC-GCN) |
#
# And as a masked language model, bits per character: BERT with 512 tokens 1.23, BigBird with
# 4,096 tokens **1.12** (lower is better).

# %% [markdown] slideshow={"slide_type": "notes"}
# Draw the three patterns on the board first. The window is locality (the same bias a CNN
# has), the global tokens are a hub (two hops between any pair), random edges make an
# expander graph. Let students play with the widget: the percentage in each title is the
# fraction of work left. Then the log-log plot: the BigBird line has slope 1. The results table:
# the point is not that sparse beats dense at the same length, but that sparse lets you use 8x longer inputs.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Block-sparse attention that is actually cheaper
#
# A mask alone saves nothing: `scaled_dot_product_attention(q, k, v, mask)` still computes all
# $n^2$ scores and then throws most away. To save work, compute only the attended blocks:
#
# 1. cut $Q$, $K$, $V$ into blocks of $b$ tokens: shape $(n/b,\ b,\ d)$;
# 2. for each query block, **gather** the $K_{\text{blocks}}$ key and value blocks it attends to
#    (window + global + random): shape $(n/b,\ K_{\text{blocks}}\, b,\ d)$;
# 3. run ordinary attention inside each gathered group: $(b \times K_{\text{blocks}} b)$ scores
#    per query block, $n\, K_{\text{blocks}}\, b$ in all, **linear** in $n$.
#
# Global query blocks see every key block: they are computed as ordinary dense attention (a few
# rows of length $n$, still linear). Rows that see fewer blocks than the busiest one are padded
# with a dummy block that a small mask hides.

# %% slideshow={"slide_type": "subslide"}
from course_utils.sparse import block_sparse_attention, layout_indices


def block_sparse(q, k, v, layout, b):
    """Attention restricted to a block layout, computing only the attended blocks.

    q, k, v: (..., n, d); layout: (n/b, n/b) bool -> (..., n, d)."""
    *lead, n, d = q.shape
    nb = n // b
    dense_rows, rows, idx, valid = layout_indices(layout)  # global rows | the rest, padded to K blocks
    qb, kb, vb = (x.reshape(*lead, nb, b, d) for x in (q, k, v))
    out = torch.empty_like(qb)  # (..., nb, b, d)
    R, K = idx.shape
    k_g = kb[..., idx, :, :].reshape(*lead, R, K * b, d)  # gathered keys   (..., R, K*b, d)
    v_g = vb[..., idx, :, :].reshape(*lead, R, K * b, d)  # gathered values (..., R, K*b, d)
    scores = qb[..., rows, :, :] @ k_g.transpose(-2, -1) / math.sqrt(d)  # (..., R, b, K*b): the only scores
    padding = ~valid.repeat_interleave(b, dim=1)[:, None, :]  # (R, 1, K*b) True on the dummy blocks
    out[..., rows, :, :] = scores.masked_fill(padding, float("-inf")).softmax(-1) @ v_g
    q_glob = qb[..., dense_rows, :, :].reshape(*lead, -1, d)  # global queries see everything
    out[..., dense_rows, :, :] = scaled_dot_product_attention(q_glob, k, v)[0].reshape(*lead, -1, b, d)
    return out.reshape(*lead, n, d)


n = SPARSE_NS[-1]
layout = bigbird_layout(n // BLOCK, WINDOW, N_GLOBAL, N_RANDOM, torch.Generator().manual_seed(SEED))
q, k, v = qkv(n)
with torch.no_grad():
    ours = block_sparse(q, k, v, layout, BLOCK)
    masked_full, _ = scaled_dot_product_attention(q, k, v, expand_layout(layout, BLOCK))
err = (ours - masked_full).abs().max().item()
assert err < 1e-5, f"block-sparse must equal masked full attention, max error {err:.2e}"
assert torch.allclose(ours, block_sparse_attention(q, k, v, layout, BLOCK), atol=1e-6), "notebook and module agree"
print(
    f"n = {n}: block-sparse == masked full attention (max |difference| {err:.1e}); "
    f"it computed {attended_pairs(expand_layout(layout, BLOCK)) / n**2:.0%} of the scores"
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now time both on the same pattern. At short lengths the window, global and random blocks cover
# most of the matrix anyway and gathering costs extra copies; as $n$ grows the masked version
# keeps paying $n^2$ and the block-sparse one only $n$. The **crossover** is the length from which
# block-sparse is faster at every longer length measured.

# %% slideshow={"slide_type": "fragment"}
from tqdm.auto import tqdm

timings = []
with torch.no_grad():
    for n in tqdm(SPARSE_NS, desc="timing"):
        layout = bigbird_layout(n // BLOCK, WINDOW, N_GLOBAL, N_RANDOM, torch.Generator().manual_seed(SEED))
        mask = expand_layout(layout, BLOCK)
        q, k, v = qkv(n)
        t_masked = best_time(lambda: scaled_dot_product_attention(q, k, v, mask), repeats=REPEATS)
        t_sparse = best_time(lambda: block_sparse_attention(q, k, v, layout, BLOCK), repeats=REPEATS)
        timings.append((n, t_masked, t_sparse))

crossover = None
for n, t_masked, t_sparse in reversed(timings):
    if t_sparse >= t_masked:
        break
    crossover = n
for n, t_masked, t_sparse in timings:
    print(
        f"n = {n:>5}: masked full {t_masked * 1e3:8.1f} ms, block-sparse {t_sparse * 1e3:8.1f} ms, "
        f"speed-up x{t_masked / t_sparse:.2f}"
    )
print(
    f"crossover: block-sparse is faster from n = {crossover} on"
    if crossover
    else f"no crossover up to n = {SPARSE_NS[-1]} (SMOKE sizes are too short; full mode goes further)"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(SPARSE_NS, [t[1] * 1e3 for t in timings], "o-", label="masked full attention")
ax.loglog(SPARSE_NS, [t[2] * 1e3 for t in timings], "s-", label="block-sparse (BigBird pattern)")
if crossover:
    ax.axvline(crossover, color="gray", ls=":", label=f"crossover n = {crossover}")
ax.set(xlabel="sequence length n", ylabel="time (ms)", title=f"same pattern, blocks of {BLOCK}")
ax.legend()
plt.show()


# %% [markdown] slideshow={"slide_type": "notes"}
# The assert is the important part: block-sparse is not an approximation of the masked version,
# it IS the masked version, minus the wasted work. The crossover on a busy 2-core CPU was at
# 1,024 tokens in full mode (2,048 in one noisier run; benchmarks/long_attention.py prints it). On a GPU the story is the same but the
# kernels must be written per block (BigBird's "blockified" gathers, Triton block-sparse kernels).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. FlashAttention's idea: tiles and the online softmax
#
# Can *exact* attention avoid the $n \times n$ matrix? The softmax seems to need a whole row
# before any weight is known: its maximum $m$ (for stability, notebook 00) and its sum $\ell$.
# The trick (Milakov & Gimelshein 2018; Dao et al., FlashAttention, 2022) is to visit the keys
# tile by tile and keep, for every query, three running quantities:
#
# $$m = \max_{j \text{ seen}} s_j, \qquad \ell = \sum_{j \text{ seen}} e^{s_j - m}, \qquad a = \sum_{j \text{ seen}} e^{s_j - m}\, v_j .$$
#
# When a new tile of scores $s_{\text{tile}}$ arrives, the maximum may grow to
# $m' = \max(m, \max s_{\text{tile}})$; every old term was computed against the old maximum, so it
# must be **rescaled** by $e^{m - m'}$:
#
# $$\ell' = \ell\, e^{m - m'} + \sum_{j \in \text{tile}} e^{s_j - m'}, \qquad a' = a\, e^{m - m'} + \sum_{j \in \text{tile}} e^{s_j - m'}\, v_j .$$
#
# After the last tile, $a / \ell = \operatorname{softmax}(s)\, V$ exactly. Start with
# $m = -\infty$, $\ell = 0$, $a = 0$ (then $e^{m - m'} = 0$ and the first tile simply starts the sums).
#
# ### Exercise 2: the online-softmax update
# Write one step: given `m` (T, 1), `l` (T, 1), `acc` (T, d_v) for T queries and a tile's
# `scores` (T, B) and values `v_tile` (B, d_v), return the new `(m, l, acc)`.


# %% nbgrader={"grade": false, "grade_id": "online-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def online_softmax_update(m, l, acc, scores, v_tile):
    """One tile of keys folded into the running (max, sum, weighted sum) -> new (m, l, acc)."""
    ### BEGIN SOLUTION
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    scale = torch.exp(m - m_new)
    p = torch.exp(scores - m_new)
    l_new = l * scale + p.sum(dim=-1, keepdim=True)
    acc_new = acc * scale + p @ v_tile
    return m_new, l_new, acc_new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "online-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.flash import online_softmax_update as reference_update
from course_utils.tools.grading import GradingError, call, expect, expect_close


def _fold(update, scores, values, tile):
    """Run an update over the key tiles -> final (m, l, acc)."""
    T = scores.shape[0]
    state = (
        torch.full((T, 1), float("-inf"), dtype=scores.dtype),
        torch.zeros(T, 1, dtype=scores.dtype),
        torch.zeros(T, values.shape[1], dtype=scores.dtype),
    )
    for j in range(0, scores.shape[1], tile):
        state = update(*state, scores[:, j : j + tile], values[j : j + tile])
        if not (isinstance(state, tuple) and len(state) == 3):
            raise GradingError("online_softmax_update should return a tuple (m, l, acc) of three tensors.")
    return state


def _wrong(kind):
    def update(m, l, acc, s, v):
        m_new = torch.maximum(m, s.max(-1, keepdim=True).values) if kind != "tile" else s.max(-1, keepdim=True).values
        scale = torch.exp(m - m_new)
        if kind == "inverted":
            scale = torch.exp(m_new - m)
        p = torch.exp(s - m_new) if kind != "no max" else torch.exp(s)
        l_new = (l if kind == "sum" else l * scale) + p.sum(-1, keepdim=True)
        acc_new = (acc if kind == "acc" else acc * scale) + p @ v
        if kind == "no max":
            l_new, acc_new = l + p.sum(-1, keepdim=True), acc + p @ v
        return m_new, l_new, acc_new

    return update


def _check(scores, values, tile):
    m, l, acc = call(_fold, online_softmax_update, scores, values, tile, what="online_softmax_update")
    ref_m, ref_l, ref_acc = _fold(reference_update, scores, values, tile)
    wrong = {kind: _fold(_wrong(kind), scores, values, tile) for kind in ("sum", "acc", "inverted", "no max", "tile")}
    expect_close(
        m,
        ref_m,
        "the running max m",
        mistakes={"the max of the new tile only; keep the larger of the old m and the tile's max": wrong["tile"][0]},
    )
    expect_close(
        l,
        ref_l,
        "the running sum l",
        mistakes={
            "forgot to rescale the running sum: multiply the old l by exp(m_old - m_new) when the max changes": wrong[
                "sum"
            ][1],
            "the rescale factor is inverted: old terms shrink by exp(m_old - m_new), not exp(m_new - m_old)": wrong[
                "inverted"
            ][1],
            "no max subtracted inside exp: use exp(scores - m_new), or large scores overflow": wrong["no max"][1],
        },
    )
    expect_close(
        acc,
        ref_acc,
        "the running output acc",
        mistakes={
            "forgot to rescale acc: multiply the old acc by the same exp(m_old - m_new) as l": wrong["acc"][2],
            "the rescale factor is inverted: old terms shrink by exp(m_old - m_new), not exp(m_new - m_old)": wrong[
                "inverted"
            ][2],
        },
    )
    expect_close(acc / l, torch.softmax(scores, -1) @ values, "acc / l after the last tile")


g = torch.Generator().manual_seed(0)
scores = torch.tensor(
    [[0.0, 1.0, 5.0, 2.0], [4.0, 0.5, -1.0, 3.0]]
)  # row 0: the max changes in tile 2; row 1: it does not
values = torch.randn(4, 3, generator=g)
_check(scores, values, tile=2)
print("visible tests passed")
### BEGIN HIDDEN TESTS
_check(
    torch.randn(5, 13, generator=g, dtype=torch.float64) * 4,
    torch.randn(13, 2, generator=g, dtype=torch.float64),
    tile=3,
)
_check(torch.arange(12.0).reshape(2, 6) * 3, torch.randn(6, 4, generator=g), tile=1)  # max grows at every tile
_check(torch.randn(3, 8, generator=g) * 3 + 500.0, torch.randn(8, 2, generator=g), tile=4)  # huge scores: no overflow
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# With the update, tiled attention is two loops: over query tiles, and for each, over key
# tiles. Only one `(TILE, TILE)` block of scores exists at a time. (The module's update,
# `course_utils.flash.online_softmax_update`, is the same as yours and also copes with tiles
# that a causal mask blocks entirely.)

# %% slideshow={"slide_type": "fragment"}
from course_utils.flash import online_softmax_update as module_update, tiled_attention


def tiled(q, k, v, block_q=TILE, block_k=TILE):
    """Exact attention tile by tile: q (..., n, d), k, v (..., n_k, d) -> (..., n, d). No n x n matrix."""
    out = torch.empty_like(q)
    for i in range(0, q.shape[-2], block_q):
        qi = q[..., i : i + block_q, :] / math.sqrt(q.shape[-1])  # (..., bq, d)
        m = torch.full((*qi.shape[:-1], 1), float("-inf"))  # (..., bq, 1)
        l = torch.zeros(*qi.shape[:-1], 1)
        acc = torch.zeros_like(qi)  # (..., bq, d)
        for j in range(0, k.shape[-2], block_k):
            s = qi @ k[..., j : j + block_k, :].transpose(-2, -1)  # (..., bq, bk) one tile of scores
            m, l, acc = module_update(m, l, acc, s, v[..., j : j + block_k, :])
        out[..., i : i + block_q, :] = acc / l
    return out


q, k, v = qkv(200, heads=2, d=16)  # 200: the last tiles are ragged
exact = F.scaled_dot_product_attention(q, k, v)
for bq, bk in [(5, 7), (7, 64), (128, 128), (64, 200), (512, 512)]:
    err = (tiled(q, k, v, bq, bk) - exact).abs().max().item()
    assert err < 1e-5, f"tiles ({bq}, {bk}): tiled attention differs from exact attention by {err:.1e}"
    assert torch.allclose(tiled(q, k, v, bq, bk), tiled_attention(q, k, v, bq, bk), atol=1e-6), "notebook vs module"
    print(f"tiles {bq:>3} x {bk:<3}: max |tiled - exact| = {err:.1e}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Memory, measured.** Naive attention holds the $n \times n$ scores and weights; tiled attention
# holds one tile and the output, so its peak should grow like $n$ (the $n \times d$ output), not $n^2$.
# Here we weigh with a second, independent method, `course_utils.measure.peak_rss`: the
# process's resident-memory high-water mark that Linux keeps (`/proc/self/status`), reset just
# before the call (profiling 16,000 tiny tile operations would cost more than running them).
# At the smallest length, both methods must agree on naive attention.

# %% slideshow={"slide_type": "fragment"}
from course_utils.measure import peak_rss

memory = []
with torch.no_grad():
    for n in tqdm(MEM_NS, desc="memory"):
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, n, D_HEAD, generator=g) for _ in range(3))
        naive = peak_rss(lambda: scaled_dot_product_attention(q, k, v))
        flash = peak_rss(lambda: tiled_attention(q, k, v, TILE, TILE))
        memory.append((n, naive, flash))
        del q, k, v
if memory[0][1] is None:
    print("peak memory cannot be measured on this system (it needs Linux's /proc); the algorithm still holds")
else:
    for n, naive, flash in memory:
        print(
            f"n = {n:>6,}: naive {naive / 2**20:8.1f} MiB, tiled {flash / 2**20:6.2f} MiB "
            f"(output alone {n * D_HEAD * 4 / 2**20:5.2f} MiB)"
        )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.loglog(MEM_NS, [r[1] / 2**20 for r in memory], "o-", label="naive (forms n x n)")
    ax.loglog(MEM_NS, [r[2] / 2**20 for r in memory], "s-", label=f"tiled, {TILE} x {TILE} tiles")
    ax.loglog(MEM_NS, [n * D_HEAD * 4 / 2**20 for n in MEM_NS], "k:", label=r"output $n \times d$")
    ax.set(xlabel="sequence length n", ylabel="peak extra memory (MiB)", title="one head, d = 64")
    ax.legend()
    plt.show()
    n0, naive0, flash0 = memory[0]
    q, k, v = (torch.randn(1, n0, D_HEAD, generator=torch.Generator().manual_seed(n0)) for _ in range(3))
    _, profiled = time_and_memory(lambda: scaled_dot_product_attention(q, k, v), "cpu", 1)
    assert abs(profiled - naive0) < 0.25 * profiled, (
        f"profiler {profiled / 2**20:.1f} MiB vs resident {naive0 / 2**20:.1f} MiB"
    )
    print(f"cross-check at n = {n0}: profiler {profiled / 2**20:.1f} MiB, resident memory {naive0 / 2**20:.1f} MiB")
    n1, naive1, flash1 = memory[-1]
    assert naive1 / naive0 > 0.6 * (n1 / n0) ** 2, "naive memory should grow like n^2"
    assert flash1 < naive1 / 4, "tiled attention should need far less memory than naive attention"
    print(
        f"n x{n1 // n0}: naive memory x{naive1 / naive0:.0f} (n^2 predicts {(n1 // n0) ** 2}), "
        f"tiled x{flash1 / flash0:.1f} (n predicts {n1 // n0})"
    )

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What PyTorch does.** Our loops are slow Python; the real FlashAttention is one fused GPU
# kernel that keeps a tile of $Q$, $K$, $V$ in the fast on-chip memory (SRAM) and never writes the
# scores to the slow main memory (HBM). The gain is fewer memory transfers, not fewer
# flops. `torch.nn.functional.scaled_dot_product_attention` picks such a kernel
# automatically (flash or memory-efficient attention on a GPU, a fused tiled kernel on the CPU),
# which is why later notebooks may switch to it. Same numbers:

# %% slideshow={"slide_type": "fragment"}
q, k, v = qkv(WALL_NS[-1])
with torch.no_grad():
    fused = F.scaled_dot_product_attention(q, k, v)
    ours_full, _ = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(fused, ours_full, atol=1e-5) and torch.allclose(fused, tiled_attention(q, k, v), atol=1e-5)
    t_fused = best_time(lambda: F.scaled_dot_product_attention(q, k, v), repeats=REPEATS)
    t_ours = best_time(lambda: scaled_dot_product_attention(q, k, v), repeats=REPEATS)
print(
    f"n = {WALL_NS[-1]}: torch fused SDPA {t_fused * 1e3:.1f} ms vs ours (materialised) {t_ours * 1e3:.1f} ms, same output"
)


# %% [markdown] slideshow={"slide_type": "notes"}
# Do the exercise on the board with two tiles of one row: scores [0, 1 | 5, 2]. After tile 1
# m = 1; tile 2 raises it to 5 and the old terms must shrink by e^(1-5). Forgetting that
# rescale is THE bug (the test names it). Then the memory plot: naive slope 2, tiled slope 1.
# Stress that FlashAttention is exact (not an approximation like BigBird) and that its win on
# GPUs is IO, which our CPU loops cannot show.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. A KV cache for fast generation
#
# A GPT generates one token at a time: to produce token $t+1$ it runs on tokens $1..t$. Run
# naively, step $t$ recomputes the keys and values of all $t$ earlier tokens, though in a causal
# decoder they never change (a token only sees the past). Keep them: a **KV cache** stores, per
# layer, the keys and values computed so far, shape `(B, heads, t, d_head)`. Each step then feeds
# **only the newest token**: its query attends over the cached keys plus its own, and its key
# and value are appended to the cache. Per step, $O(t)$ work instead of $O(t^2)$.
#
# ### Exercise 3: the KV-cache append step
# Write `append_kv(cache_k, cache_v, k_new, v_new)`. The cache tensors are `(B, h, t, d)`, or
# `None` when nothing is cached yet; the new keys and values are `(B, h, t_new, d)`. Return the
# cache extended by the new positions, `(B, h, t + t_new, d)` each, old positions first.


# %% nbgrader={"grade": false, "grade_id": "kv-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def append_kv(cache_k, cache_v, k_new, v_new):
    """Append new keys/values after the cached ones along time -> (k, v), each (B, h, t + t_new, d)."""
    ### BEGIN SOLUTION
    if cache_k is None:
        return k_new, v_new
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, v_new], dim=-2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.grading import call, expect, expect_close


def _check_append(B, h, t, t_new, d, seed):
    g = torch.Generator().manual_seed(seed)
    ck, cv, kn, vn = (torch.randn(B, h, n, d, generator=g) for n in (t, t, t_new, t_new))
    out = call(append_kv, ck, cv, kn, vn)
    expect(isinstance(out, tuple) and len(out) == 2, "append_kv should return a tuple (keys, values).")
    k, v = out
    shapes = {
        (B, h, t, 2 * d)
        if t == t_new
        else None: "the keys grew in the feature dimension: concatenate along time, dim=-2",
        (B, 2 * h, t, d)
        if t == t_new
        else None: "the cache grew in the heads dimension: concatenate along time, dim=-2",
        (2 * B, h, t, d)
        if t == t_new
        else None: "the cache grew in the batch dimension: concatenate along time, dim=-2",
    }
    for wrong_shape, message in shapes.items():
        expect(tuple(k.shape) != wrong_shape, message)
    expect(
        tuple(k.shape) == (B, h, t + t_new, d) and tuple(v.shape) == (B, h, t + t_new, d),
        f"appending {t_new} position(s) to a cache of {t} should give (B, h, t + t_new, d) = "
        f"{(B, h, t + t_new, d)}, got keys {tuple(k.shape)}; concatenate along time, dim=-2.",
    )
    expect_close(
        k,
        torch.cat([ck, kn], dim=-2),
        "the keys",
        mistakes={
            "the new keys were put before the cached ones: old positions come first": torch.cat([kn, ck], dim=-2)
        },
    )
    expect_close(
        v,
        torch.cat([cv, vn], dim=-2),
        "the values",
        mistakes={
            "the values hold keys: append v_new to cache_v": torch.cat([cv, kn], dim=-2),
            "the new values were put before the cached ones: old positions come first": torch.cat([vn, cv], dim=-2),
        },
    )
    k0, v0 = call(append_kv, None, None, kn, vn, what="append_kv with an empty cache (None)")
    expect_close(k0, kn, "the keys appended to an empty cache (None)")
    expect_close(v0, vn, "the values appended to an empty cache (None)")


_check_append(B=2, h=3, t=4, t_new=4, d=5, seed=0)
print("visible tests passed")
### BEGIN HIDDEN TESTS
_check_append(B=1, h=2, t=6, t_new=1, d=8, seed=1)  # the usual generation step: one new token
_check_append(B=3, h=1, t=1, t_new=2, d=3, seed=2)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same function lives in `course_utils.kvcache`. First, a check that the cache changes
# nothing but the cost: feeding tokens one at a time, each new query over the cached keys gives
# exactly the rows of full causal attention.

# %% slideshow={"slide_type": "fragment"}
from course_utils.kvcache import append_kv as module_append_kv
from course_utils.tools.grading import use_or_reference

append_fn = use_or_reference(append_kv, module_append_kv)  # the module's until yours is written
q, k, v = qkv(12, heads=2, d=8)
full_causal, _ = scaled_dot_product_attention(q, k, v, causal_mask(12))
ck, cv = None, None
steps = []
for t in range(12):  # feed the tokens one at a time
    ck, cv = append_fn(ck, cv, k[..., t : t + 1, :], v[..., t : t + 1, :])
    steps.append(scaled_dot_product_attention(q[..., t : t + 1, :], ck, cv)[0])
assert torch.allclose(torch.cat(steps, dim=-2), full_causal, atol=1e-6), "cached steps must equal causal attention"
assert all(
    torch.equal(a, b)
    for a, b in zip(
        append_fn(ck, cv, k[..., :1, :], v[..., :1, :]), module_append_kv(ck, cv, k[..., :1, :], v[..., :1, :])
    )
)
print("12 cached steps == full causal attention; the append_kv used == course_utils.kvcache.append_kv")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now a whole model: notebook 05's GPT (`course_utils.gpt`, nanoGPT-style, on our attention), whose
# `KVCache` keeps the keys and values in preallocated buffers, `(B, h, max_len, d)` per layer, and
# whose `generate(use_cache=True)` feeds one token per step. We give it rotary positions (RoPE,
# notebook 02) and a context of 550 tokens, and train it briefly on *Pride and Prejudice*, one token
# per character. A short training run only teaches it letter and word shapes; what we measure here
# (speed, identical tokens) does not depend on how well it is trained.

# %% slideshow={"slide_type": "fragment"}
from course_utils.data import load_austen

text = load_austen()["Pride and Prejudice"]
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text])
from course_utils.gpt import GPT, GPTConfig
from course_utils.measure import count_parameters
from course_utils.train import train_for, warmup_scheduler


def train_gpt(model, batches, steps, desc):
    """`steps` AdamW steps with notebook 05's warm-up schedule; batches() -> (inputs, targets). Returns the losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=1.0, betas=(0.9, 0.98))
    schedule = warmup_scheduler(opt, model.config.d_model, WARMUP, factor=LR_FACTOR)
    history = train_for(
        model,
        opt,
        iter(batches, None),
        lambda m, b: (m(b[0], targets=b[1])[1], b[1].numel()),
        max_steps=steps,
        scheduler=schedule,
        clip_grad=None,
        desc=desc,
    )
    model.eval()
    return [row["loss"] for row in history.train]


g = torch.Generator().manual_seed(SEED)


def text_batch():
    starts = torch.randint(len(data) - TRAIN_CONTEXT - 1, (TRAIN_BATCH,), generator=g)
    x = torch.stack([data[s : s + TRAIN_CONTEXT] for s in starts])  # (B, T)
    return x, torch.stack([data[s + 1 : s + TRAIN_CONTEXT + 1] for s in starts])  # targets: shifted by one


gpt = GPT(
    GPTConfig(
        vocab_size=len(chars),
        max_len=len(PROMPT) + max(KV_LENGTHS),
        n_layers=GPT_LAYERS,
        n_heads=GPT_HEADS,
        d_model=GPT_EMBD,
        rope=True,
    )
)
losses = train_gpt(gpt, text_batch, TRAIN_STEPS, "training on characters")
print(
    f"{count_parameters(gpt):,} parameters; loss {losses[0]:.2f} -> "
    f"{sum(losses[-10:]) / len(losses[-10:]):.2f} nats per character (uniform guessing: {math.log(len(chars)):.2f})"
)
assert sum(losses[-5:]) / 5 < losses[0], "training should lower the loss"

# %% slideshow={"slide_type": "subslide"}
prompt = torch.tensor([[stoi[c] for c in PROMPT]])
results = []


def timed_generation(n_new, use_cache):
    """(best seconds of KV_REPEATS runs after a warm-up, the tokens): greedy, so every run gives the same tokens."""
    outputs = []
    seconds = best_time(
        lambda: outputs.append(gpt.generate(prompt, n_new, temperature=0, use_cache=use_cache)), repeats=KV_REPEATS
    )
    return seconds, outputs[-1]


for n_new in tqdm(KV_LENGTHS, desc="generating"):
    t_without, without = timed_generation(n_new, use_cache=False)
    t_with, with_cache = timed_generation(n_new, use_cache=True)
    assert torch.equal(without, with_cache), f"{n_new} tokens: the cache must not change a single token"
    results.append((n_new, t_without, t_with))
    print(
        f"{n_new:>4} new tokens: no cache {t_without:6.2f} s, KV cache {t_with:5.2f} s, "
        f"speed-up x{t_without / t_with:.1f}, identical tokens"
    )
print("\n" + "".join(chars[i] for i in with_cache[0].tolist()))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(KV_LENGTHS, [r[1] / r[2] for r in results], "o-")
ax.set(xlabel="tokens generated", ylabel="speed-up (no cache / cache)", title="greedy generation, same tokens")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The speed-up grows with the length: without a cache the total work is
# $\sum_t t \approx T^2/2$ positions (and $\sum_t t^2 \approx T^3/3$ attention scores); with it, $T$
# positions. The price is memory: per token, $2 \times$ layers $\times$ heads $\times d_{\text{head}}$
# numbers (for GPT-3, 175B: 2 x 96 layers x 12,288 features x 2 bytes, about 4.7 MB per token in float16), which is why serving systems
# page the cache (vLLM) and share keys across heads (multi-query and grouped-query attention).

# %% [markdown] slideshow={"slide_type": "notes"}
# Walk through one generation step with shapes: x (1, 1, C) -> q, k, v (1, h, 1, d) -> cache
# (1, h, t+1, d) -> scores (1, h, 1, t+1). The assert of identical tokens is the correctness
# argument; the plot is the payoff. Typical bug from the exercise: concatenating on the feature
# dim (-1), which only fails later with a shape error in q @ k^T.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Images as sequences of tokens
#
# Text-to-image models like Parti (Yu et al., 2022) treat an image as a sentence.
# An image tokenizer (a ViT-VQGAN in Parti) cuts it into patches and maps each patch to the
# nearest entry of a learned **codebook**: a 256 x 256 image becomes 32 x 32 = 1,024 integer ids.
# A decoder-only transformer then reads the text tokens followed by the image tokens and learns
# to predict the next image token, exactly like next-word prediction; to draw, it generates 1,024
# ids one by one (with a KV cache!) and the tokenizer's decoder turns them back into pixels.
#
# The simplest codebook is k-means on raw patches: Fashion-MNIST's 28 x 28 images in 4 x 4
# patches give 49 tokens per image, each an id in $[0, K)$.

# %% slideshow={"slide_type": "subslide"}
from course_utils.codebook import PatchCodebook
from course_utils.data import load_fashion_mnist

train_images, train_labels = load_fashion_mnist("train")
test_images, _ = load_fashion_mnist("test")
x_train = torch.tensor(train_images[:N_TRAIN_IMAGES], dtype=torch.float32) / 255
x_test = torch.tensor(test_images[:500], dtype=torch.float32) / 255
books, errors = {}, {}
for K in tqdm(CODEBOOK_SIZES, desc="codebooks"):
    books[K] = PatchCodebook.fit(x_train, k=K, patch=PATCH, n_patches=KMEANS_PATCHES, n_iter=KMEANS_ITERS, seed=SEED)
    ids = books[K].encode(x_test)  # (500, 49) token ids
    errors[K] = ((books[K].decode(ids, 28, 28) - x_test) ** 2).mean().item()
    print(
        f"K = {K:>3}: {ids.shape[1]} tokens per image, {math.log2(K):.0f} bits each; "
        f"test reconstruction MSE {errors[K]:.4f} (pixel variance {x_test.var().item():.4f})"
    )
sizes = sorted(errors)
assert all(errors[a] > errors[b] for a, b in zip(sizes, sizes[1:])), "a bigger codebook should reconstruct better"
assert errors[sizes[-1]] < 0.5 * x_test.var().item(), "the codebook should explain most of the pixel variance"

# %% slideshow={"slide_type": "subslide"}
K = CODEBOOK_SIZES[-1]
ids = books[K].encode(x_test[:6])
fig, axes = plt.subplots(len(CODEBOOK_SIZES) + 2, 6, figsize=(9, 1.6 * (len(CODEBOOK_SIZES) + 2)))
for j in range(6):
    axes[0, j].imshow(x_test[j], cmap="gray_r")
    for r, Kr in enumerate(CODEBOOK_SIZES, start=1):
        axes[r, j].imshow(books[Kr].decode(books[Kr].encode(x_test[j : j + 1]), 28, 28)[0], cmap="gray_r")
    axes[-1, j].imshow(ids[j].view(7, 7), cmap="tab20")
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("original")
for r, Kr in enumerate(CODEBOOK_SIZES, start=1):
    axes[r, 0].set_ylabel(f"K = {Kr}")
axes[-1, 0].set_ylabel(f"ids (K={K})")
plt.tight_layout()
plt.show()
print("the first image as a 'sentence' of", ids.shape[1], "tokens:", ids[0].tolist())

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Generating an image token by token**, Parti in miniature: the "text" is a single token
# naming the class (`K + label`), followed by the image's 49 ids. A small GPT (the decoder of
# section 5) learns to predict each next id; to draw a "trouser" it starts from that class
# token and samples 49 ids, one at a time with the KV cache, and the codebook turns them into pixels.

# %% slideshow={"slide_type": "fragment"}
from course_utils.data import FASHION_CLASSES

book = books[K]
with torch.no_grad():
    image_ids = torch.cat([book.encode(x_train[i : i + 2000]) for i in range(0, len(x_train), 2000)])  # (N, 49)
labels = torch.as_tensor(train_labels[: len(x_train)], dtype=torch.long)
sequences = torch.cat([K + labels[:, None], image_ids], dim=1)  # (N, 50): class token, then the image
L = image_ids.shape[1]


def image_batch():
    batch = sequences[torch.randint(len(sequences), (IMG_BATCH,), generator=g)]
    return batch[:, :-1], batch[:, 1:]  # predict every image token


painter = GPT(GPTConfig(vocab_size=K + 10, max_len=L + 1, n_layers=IMG_LAYERS, n_heads=GPT_HEADS, d_model=GPT_EMBD))
img_losses = train_gpt(painter, image_batch, IMG_GPT_STEPS, "training on image tokens")
print(
    f"image-token loss {img_losses[0]:.2f} -> {sum(img_losses[-10:]) / len(img_losses[-10:]):.2f} nats "
    f"(uniform over {K} codewords: {math.log(K):.2f})"
)
assert sum(img_losses[-5:]) / 5 < img_losses[0], "training should lower the loss"

prompts = (K + torch.arange(10))[:, None]  # one class token per row
drawn = painter.generate(
    prompts, L, temperature=IMG_TEMPERATURE, use_cache=True, generator=torch.Generator().manual_seed(SEED)
)[:, 1:]  # (10, 49) sampled ids
drawn = torch.where(drawn < K, drawn, torch.zeros_like(drawn))  # a stray class token -> codeword 0
pictures = book.decode(drawn, 28, 28)
fig, axes = plt.subplots(1, 10, figsize=(12, 1.8))
for ax, pic, name in zip(axes, pictures, FASHION_CLASSES):
    ax.imshow(pic, cmap="gray_r", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=name)
    ax.title.set_fontsize(8)
fig.suptitle("generated token by token from a class token (decoded with the codebook)")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The codewords themselves are the visual vocabulary: flat patches, edges at every angle, corners.
# A transformer over these ids needs a 49-token context here, 1,024 in Parti, and many more for
# high-resolution images or video: exactly the long sequences that the first five sections make
# affordable.

# %% slideshow={"slide_type": "fragment"}
words = books[K].codewords[:32].view(-1, PATCH, PATCH)
fig, axes = plt.subplots(2, 16, figsize=(10, 1.5))
for ax, w in zip(axes.flat, words):
    ax.imshow(w, cmap="gray_r", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[])
fig.suptitle(f"the first {len(words)} of {K} codewords ({PATCH} x {PATCH} pixels)")
plt.show()
import resource

cpu = resource.getrusage(resource.RUSAGE_SELF)
print(
    f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s of CPU "
    f"(SMOKE = {SMOKE}; on a busy machine wall >> CPU / threads)"
)

# %% [markdown] slideshow={"slide_type": "notes"}
# Connect to section 5: generating an image is generating 1,024 tokens, so the KV cache
# matters here too. The k-means codebook is the poor man's VQ-VAE: same interface (encode ->
# ids -> decode), no learned encoder/decoder, so reconstructions are blocky. Parti's ViT-VQGAN
# has 8,192 codewords and a decoder network that makes them sharp; the transformer on top has 20B parameters.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Zaheer et al., *Big Bird: Transformers for Longer Sequences* (NeurIPS 2020): the three
#   patterns, the proofs, the result tables quoted above.
# - Beltagy, Peters and Cohan, *Longformer: The Long-Document Transformer* (2020): sliding
#   window plus global attention, the other row of the table.
# - Dao, Fu, Ermon, Rudra and Ré, *FlashAttention: Fast and Memory-Efficient Exact Attention
#   with IO-Awareness* (2022), and FlashAttention-2 (Dao, 2023); Milakov and Gimelshein,
#   *Online normalizer calculation for softmax* (2018).
# - Pope et al., *Efficiently Scaling Transformer Inference* (2022), on KV caches; Kwon et al.,
#   *vLLM / PagedAttention* (2023).
# - Yu et al., *Scaling Autoregressive Models for Content-Rich Text-to-Image Generation*
#   (Parti, 2022), and van den Oord et al., *Neural Discrete Representation Learning* (VQ-VAE, 2017).
# - Vaswani et al., *Attention Is All You Need* (2017): the $n^2 d$ cost table (their Table 1).

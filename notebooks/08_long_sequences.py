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
# **Five graded exercises** along the way: the sliding-window mask, the online-softmax update,
# tiled attention (you assemble FlashAttention's two loops from that update), the KV-cache append
# step, and a prediction of how the cache's memory grows, made before you see it measured.
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
CACHE_LENGTHS = [64, 128, 256, 512]  # cached positions whose memory is weighed (cheap; 128 and 512: Exercise 5)
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
# For a sentence ($n = 70$, $d = 1000$) that is $4.9$ million operations, small beside the
# $4 n d^2 = 280$ million of the layer's own $Q, K, V, O$ projections (notebook 01, section 7:
# the mixing $2 n^2 d$ overtakes the projections at $n = 2d$). Past that the $n^2$ term is the
# layer: at 4,096 tokens one head's float32 score matrix weighs 64 MiB; at 100,000 tokens,
# 37 GiB, per head, per layer.


# %% slideshow={"slide_type": "subslide"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
def attention_cost(n, d):
    """(n^2 d operations of the scores, n d^2 of one d x d projection, bytes of one float32 n x n matrix)."""
    return n * n * d, n * d * d, 4 * n * n


n, d = 70, 1000
ops_attn, ops_rnn, _ = attention_cost(n, d)
print(
    f"a sentence, n={n}, d={d}: scores n^2 d = {ops_attn / 1e6:.1f} M, projections 4 n d^2 = {4 * ops_rnn / 1e6:.0f} M"
)
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
# ### Exercise 1: the sliding-window mask (2 points)
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
from course_utils.tools.exercises.ex08_long_sequences import (
    check_window_mask,
    expect_boolean_mask,
    window_mask_properties,
    window_mistakes,
)
from course_utils.tools.grading import call, expect_equal

# by hand: 4 tokens, window 1: each token sees itself and its neighbour on each side
m = call(window_mask, 4, 1)
expect_boolean_mask(m, 4, "4 tokens")
expect_equal(
    m,
    torch.tensor(
        [[True, True, False, False], [True, True, True, False], [False, True, True, True], [False, False, True, True]]
    ),
    "window_mask(4, 1)",
    mistakes=window_mistakes(4, 1),
)
window_mask_properties(window_mask)  # boolean, (n, n), symmetric, True on the diagonal
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_window_mask(window_mask)
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

from course_utils.tools.results import record, recording

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
if recording() and not SMOKE and crossover:  # `make run`: the figures the notes quote, into results/08.json
    n_last, t_masked, t_sparse = timings[-1]
    record(
        "08",
        "block-sparse-vs-masked-full",
        {"crossover": crossover, "speedup": round(t_masked / t_sparse, 2), "n": n_last},
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
# n = <!-- result 08/block-sparse-vs-masked-full/crossover -->1,024 tokens in full mode (2,048 in one noisier
# run; benchmarks/long_attention.py prints it). On a GPU the story is the same but the
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
# ### Exercise 2: the online-softmax update (3 points)
# Write one step: given `m` (T, 1), `l` (T, 1), `acc` (T, d_v) for T queries and a tile's
# `scores` (T, B) and values `v_tile` (B, d_v), return the new `(m, l, acc)`, in the dtype of the
# inputs. Return new tensors: leave the inputs as they are (no `l *= ...`).


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
import math

import torch
from course_utils.tools.exercises.ex08_long_sequences import (
    check_online_softmax_update,
    expect_update,
    online_softmax_properties,
)

# By hand, one query. Seen so far: one key, score ln 2, value [1, 0], so m = ln 2, l = e^0 = 1, acc = [1, 0].
# The new tile: one key, score ln 6, value [0, 1]. The max grows to ln 6 and the old terms shrink by
# exp(ln 2 - ln 6) = 1/3: l = 1/3 + 1 = 4/3, acc = [1/3, 0] + [0, 1] = [1/3, 1]; acc / l = [1/4, 3/4].
ln2, ln6 = math.log(2), math.log(6)
state, tile = (torch.tensor([[ln2]]), torch.tensor([[1.0]]), torch.tensor([[1.0, 0.0]])), torch.tensor([[ln6]])
expected = (torch.tensor([[ln6]]), torch.tensor([[4 / 3]]), torch.tensor([[1 / 3, 1.0]]))
expect_update(
    online_softmax_update,
    (*state, tile, torch.tensor([[0.0, 1.0]])),
    expected,
    on="the worked example where the max grows",
)
# The same two keys in the other order: the max stays ln 6, the new term is exp(ln 2 - ln 6) = 1/3, same result.
state, tile = (torch.tensor([[ln6]]), torch.tensor([[1.0]]), torch.tensor([[0.0, 1.0]])), torch.tensor([[ln2]])
expect_update(
    online_softmax_update,
    (*state, tile, torch.tensor([[1.0, 0.0]])),
    expected,
    on="the worked example where the max stays",
)
online_softmax_properties(online_softmax_update)  # m = the row max; acc / l the same for any tile size
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_online_softmax_update(online_softmax_update)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# With the update, tiled attention is two loops: over query tiles, and for each, over key
# tiles. Only one `(block_q, block_k)` tile of scores exists at a time.
#
# ### Exercise 3: tiled attention (4 points)
# Assemble FlashAttention's loops. Write `tiled_attention(q, k, v, block_q, block_k, is_causal=False)`
# that returns $\operatorname{softmax}(q k^\top / \sqrt{d})\, v$ for `q` (..., T_q, d), `k` (..., T_k, d),
# `v` (..., T_k, d_v), as a `(..., T_q, d_v)` tensor in the dtype of `q`:
# - for each query tile `q[..., i : i + block_q, :]`, start from $m = -\infty$, $\ell = 0$, $a = 0$,
#   shapes `(..., bq, 1)`, `(..., bq, 1)` and `(..., bq, d_v)`;
# - for each key tile `j`, compute that tile's scores $q_i k_j^\top / \sqrt{d}$, `(..., bq, bk)`, and fold
#   them in with the update of Exercise 2 (write it inline, or import `online_softmax_update` from
#   `course_utils.flash`, which is the same as yours);
# - after the last key tile, that query tile's rows of the output are $a / \ell$.
#
# The last tiles may be shorter: $T$ need not be a multiple of the tile size. With `is_causal=True`,
# query $t$ sees keys $0..t$ (as with `causal_mask`): in each tile, set the scores of later keys to
# $-\infty$, using positions in the whole sequence, not in the tile. Never form more than one tile of
# scores, call no softmax or attention function (the test checks both), and leave the inputs as they are.


# %% nbgrader={"grade": false, "grade_id": "tiled-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def tiled_attention(q, k, v, block_q, block_k, is_causal=False):
    """Exact softmax(q k^T / sqrt(d)) v, one (block_q, block_k) tile of scores at a time -> (..., T_q, d_v)."""
    ### BEGIN SOLUTION
    T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    rows = []
    for i in range(0, T_q, block_q):
        qi = q[..., i : i + block_q, :] / math.sqrt(d)  # (..., bq, d)
        m = torch.full((*qi.shape[:-1], 1), float("-inf"), dtype=q.dtype)  # (..., bq, 1)
        l = torch.zeros_like(m)  # (..., bq, 1)
        acc = torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=q.dtype)  # (..., bq, d_v)
        for j in range(0, T_k, block_k):
            s = qi @ k[..., j : j + block_k, :].transpose(-2, -1)  # (..., bq, bk): one tile of scores
            if is_causal:  # positions in the whole sequence: query i + row, key j + column
                query_pos = torch.arange(i, i + qi.shape[-2])[:, None]
                key_pos = torch.arange(j, j + s.shape[-1])[None, :]
                s = s.masked_fill(key_pos > query_pos, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))  # key 0 is always seen: m is finite from tile 0
            scale = torch.exp(m - m_new)
            p = torch.exp(s - m_new)
            l = l * scale + p.sum(dim=-1, keepdim=True)
            acc = acc * scale + p @ v[..., j : j + block_k, :]
            m = m_new
        rows.append(acc / l)  # (..., bq, d_v)
    return torch.cat(rows, dim=-2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tiled-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math

import torch
from course_utils.tools.exercises.ex08_long_sequences import (
    check_tiled_attention,
    expect_tiled_attention,
    tiled_attention_properties,
)

# By hand: one query, two keys, d = 1, scores 0 and ln 3 -> weights 1/4 and 3/4; tiles of one key.
q, k, v = torch.tensor([[1.0]]), torch.tensor([[0.0], [math.log(3)]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
expect_tiled_attention(tiled_attention, q, k, v, 1, 1, torch.tensor([[0.25, 0.75]]), on="the worked example")
# Causal, two such queries: the first sees only key 0 (its value [1, 0]), the second sees both keys.
q2 = torch.tensor([[1.0], [1.0]])
causal = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
expect_tiled_attention(tiled_attention, q2, k, v, 1, 1, causal, is_causal=True, on="the causal worked example")
tiled_attention_properties(tiled_attention)  # shape, dtype, any tile size gives the same output, ...
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_tiled_attention(tiled_attention)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Your `tiled_attention` against PyTorch's exact attention on 200 tokens, so that most tile sizes
# leave a shorter last tile. (The module's version, `course_utils.flash.tiled_attention`, is the same
# algorithm; its update also copes with a tile that a mask blocks entirely.)

# %% slideshow={"slide_type": "fragment"}
from course_utils.flash import tiled_attention as module_tiled_attention
from course_utils.tools.grading import use_or_reference

tiled = use_or_reference(tiled_attention, module_tiled_attention, "tiled_attention")  # the module's until yours works
q, k, v = qkv(200, heads=2, d=16)  # 200: the last tiles are ragged
exact = F.scaled_dot_product_attention(q, k, v)
for bq, bk in [(5, 7), (7, 64), (128, 128), (64, 200), (512, 512)]:
    err = (tiled(q, k, v, bq, bk) - exact).abs().max().item()
    assert err < 1e-5, f"tiles ({bq}, {bk}): tiled attention differs from exact attention by {err:.1e}"
    assert torch.allclose(tiled(q, k, v, bq, bk), module_tiled_attention(q, k, v, bq, bk), atol=1e-6), "yours vs module"
    print(f"tiles {bq:>3} x {bk:<3}: max |tiled - exact| = {err:.1e}")
causal_err = (tiled(q, k, v, 16, 24, is_causal=True) - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs()
assert causal_err.max() < 1e-5, f"causal tiled attention differs from exact causal attention by {causal_err.max():.1e}"
print(f"causal, tiles 16 x 24: max |tiled - exact| = {causal_err.max():.1e}")

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
        flash = peak_rss(lambda: module_tiled_attention(q, k, v, TILE, TILE))
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
    if recording() and not SMOKE:  # into results/08.json
        record(
            "08",
            "peak-memory-at-n-16k",
            {"n": n1, "naive_mib": round(naive1 / 2**20, 1), "tiled_mib": round(flash1 / 2**20, 2)},
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
    assert torch.allclose(fused, ours_full, atol=1e-5) and torch.allclose(
        fused, module_tiled_attention(q, k, v), atol=1e-5
    )
    t_fused = best_time(lambda: F.scaled_dot_product_attention(q, k, v), repeats=REPEATS)
    t_ours = best_time(lambda: scaled_dot_product_attention(q, k, v), repeats=REPEATS)
print(
    f"n = {WALL_NS[-1]}: torch fused SDPA {t_fused * 1e3:.1f} ms vs ours (materialised) {t_ours * 1e3:.1f} ms, same output"
)


# %% [markdown] slideshow={"slide_type": "notes"}
# Do the exercise on the board with two tiles of one row: scores [0, 1 | 5, 2]. After tile 1
# m = 1; tile 2 raises it to 5 and the old terms must shrink by e^(1-5). Forgetting that
# rescale is THE bug (the test names it). Exercise 3 puts the update into the two loops; the usual
# slips are a causal mask built with positions inside the tile, and a last, shorter key tile
# skipped (the tests name both, and fail an answer that forms the whole score matrix).
# Then the memory plot: naive slope 2, tiled slope 1.
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
# ### Exercise 4: the KV-cache append step (2 points)
# Write `append_kv(cache_k, cache_v, k_new, v_new)`. The cache tensors are `(B, h, t, d)`, or
# `None` when nothing is cached yet; the new keys and values are `(B, h, t_new, d)`. Return the
# cache extended by the new positions, `(B, h, t + t_new, d)` each, old positions first, in the
# dtype of the inputs.


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
from course_utils.tools.exercises.ex08_long_sequences import append_kv_properties, check_append_kv
from course_utils.tools.grading import call, expect_close

append_kv_properties(append_kv)  # shapes, old positions first, None = an empty cache
# By hand: batch 1, 1 head, 1 feature. Keys 1, 2 and values 10, 20 are cached; the new token brings 3 and 30.
cache_k, cache_v = torch.tensor([[[[1.0], [2.0]]]]), torch.tensor([[[[10.0], [20.0]]]])  # (1, 1, 2, 1)
k, v = call(append_kv, cache_k, cache_v, torch.tensor([[[[3.0]]]]), torch.tensor([[[[30.0]]]]))
expect_close(k, torch.tensor([[[[1.0], [2.0], [3.0]]]]), "the keys of the worked example")
expect_close(v, torch.tensor([[[[10.0], [20.0], [30.0]]]]), "the values of the worked example")
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_append_kv(append_kv)
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
if recording() and not SMOKE:  # into results/08.json
    n_new, t_without, t_with = results[-1]
    record("08", "kv-cache-speed-up-512", {"n": n_new, "notebook_speedup": round(t_without / t_with, 2)})

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(KV_LENGTHS, [r[1] / r[2] for r in results], "o-")
ax.set(xlabel="tokens generated", ylabel="speed-up (no cache / cache)", title="greedy generation, same tokens")
plt.show()


# %% [markdown] slideshow={"slide_type": "subslide"}
# The speed-up grows with the length: without a cache the total work is
# $\sum_t t \approx T^2/2$ positions (and $\sum_t t^2 \approx T^3/3$ attention scores); with it, $T$
# positions. The price is memory: the cache keeps every key and value it has computed.
#
# ### Exercise 5: predict the cache's memory (1 point)
# Our GPT has 4 layers and 4 heads of 32 features. Generating with `append_kv`, it keeps per layer
# the keys and values of every position so far. How much more memory does the cache hold after
# **512** positions than after **128** (4 times as many)?
#
# - **a**: about the same: the cache is a fixed-size summary of the past
# - **b**: about 4 times as much
# - **c**: about 16 times as much, like attention's $n \times n$ score matrix
#
# Make `prediction()` return `"a"`, `"b"` or `"c"` before you run the measurement below.


# %% nbgrader={"grade": false, "grade_id": "cache-prediction-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def prediction():
    """Your prediction: "a", "b" or "c"."""
    ### BEGIN SOLUTION
    return "b"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cache-prediction-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.grading import call, expect_choice

expect_choice(call(prediction), ("a", "b", "c"), "your prediction")
print("visible tests passed")
### BEGIN HIDDEN TESTS
expect_choice(
    call(prediction),
    ("a", "b", "c"),
    "your prediction",
    correct="b",
    why="The measurement below shows 4 times the bytes: one key and one value per position, layer and head.",
)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The measurement: the cache of one generation step per position, filled by `append_kv` (yours once
# it works) for each of the GPT's layers, weighed in bytes at a few lengths. The numbers in it do not
# matter for its size, so random keys and values stand in for the model's.

# %% slideshow={"slide_type": "fragment"}
d_head = GPT_EMBD // GPT_HEADS
g_cache = torch.Generator().manual_seed(SEED)
caches = [(None, None)] * GPT_LAYERS  # one (keys, values) pair per layer
cache_bytes = {}
for t in range(1, max(CACHE_LENGTHS) + 1):  # one generation step per position: (1, h, 1, d_head) new keys and values
    caches = [append_fn(ck, cv, *torch.randn(2, 1, GPT_HEADS, 1, d_head, generator=g_cache)) for ck, cv in caches]
    if t in CACHE_LENGTHS:
        cache_bytes[t] = sum(x.numel() * x.element_size() for pair in caches for x in pair)
for t, size in cache_bytes.items():
    scores = GPT_LAYERS * GPT_HEADS * t * t * 4  # a float32 t x t score matrix per layer and head, for comparison
    print(
        f"{t:>4} positions: KV cache {size / 2**10:6.0f} KiB ({size // t:,} bytes per position); "
        f"full t x t scores would be {scores / 2**10:7.0f} KiB"
    )
growth = cache_bytes[512] / cache_bytes[128]
assert abs(growth - 4) < 1e-9, f"the cache should grow linearly with the positions, measured x{growth:.2f}"
print(f"128 -> 512 positions (x4): the cache grew x{growth:.1f}, the score matrix would grow x16")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The answer is **b**: the cache holds one key and one value per position, for every layer and head,
# $2 \times$ layers $\times$ heads $\times d_{\text{head}}$ numbers $= 2 \times 4 \times 4 \times 32 \times 4$
# bytes $= 4$ KiB per position here, so its memory grows *linearly* with the length. What grows like
# $t^2$ is the score matrix of full attention (the last column), which generation with a cache never
# builds: each step computes one row of it. Linear is still a lot. GPT-3 (175B) needs
# 2 x 96 layers x 12,288 features x 2 bytes, about 4.7 MB per token in float16, nearly 10 GB for
# 2,048 tokens, which is why serving systems page the cache (vLLM) and share keys across heads
# (multi-query and grouped-query attention). The `KVCache` of `course_utils.gpt` that we timed
# preallocates buffers for `max_len` positions: the same bytes per position, reserved up front.

# %% [markdown] slideshow={"slide_type": "notes"}
# Walk through one generation step with shapes: x (1, 1, C) -> q, k, v (1, h, 1, d) -> cache
# (1, h, t+1, d) -> scores (1, h, 1, t+1). The assert of identical tokens is the correctness
# argument; the plot is the payoff. Typical bug from the exercise: concatenating on the feature
# dim (-1), which only fails later with a shape error in q @ k^T. Take a show of hands on the
# prediction (Exercise 5) before running the memory cell: "c" (quadratic, like attention) is the
# common answer; the cache is linear, it is the work without a cache that is not.

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

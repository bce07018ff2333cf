# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 01 · Attention from scratch
#
# A transformer is attention plus bookkeeping. In this notebook you build attention
# one matrix at a time, watch a small model learn to use it, prove your version equal
# to PyTorch's, and measure what it costs.
#
# **In this notebook you will**
# - train a small encoder–decoder with and without attention and *see* the alignment it learns,
# - compute the generic attention layer $Y = \operatorname{softmax}(QK^\top/\sqrt{D_Q})\,V$ step by step, with shapes,
# - find out why the scores are divided by $\sqrt{d_k}$ (and move a slider to see it),
# - check that self-attention is permutation equivariant, and why that calls for positions,
# - mask the future and the padding, split attention into heads,
# - prove it all equal to `F.scaled_dot_product_attention` and `nn.MultiheadAttention`,
# - predict, then measure, time and memory as the sequence grows, against PyTorch's fused kernel,
# - assemble multi-head attention yourself and grade it against the course's module.
#
# **Prerequisites:** notebook 00; PyTorch tensors, `nn.Module`, a training loop; matrix products.
#
# **Run time** on a 2-core CPU: full 59 s of cells on an idle machine (2026-12-04; the two
# training runs are most of it), 4–5 min when the cores were shared with other jobs (load ≈ 15);
# SMOKE about 15 s. Not measured on a GPU.
# What lands in `course_utils.attention` is used again by notebooks 04–08.

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
import os

SMOKE = os.environ.get("COURSE_SMOKE", "0") == "1"  # tiny sizes, every code path, seconds on a CPU
SEED = 0
DEVICE = "auto"  # "auto" = CUDA, then Apple MPS, then CPU; or "cpu", "cuda", "mps"

# section 1: the reversal "translation" model
VOCAB_SIZE = 1000  # most frequent English words; the rest become <unk>
MAX_LEN = 12  # longest sentence (in words) we keep
D_EMB, D_HIDDEN, N_HEADS = 32, 64, 4  # embedding, GRU state, attention heads
BATCH_SIZE = 64
TRAIN_STEPS = 20 if SMOKE else 700  # per model (with and without attention)
LR = 3e-3
N_TEST = 100 if SMOKE else 900  # held-out sentences to evaluate on

# section 3: why sqrt(d_k)
N_QUERIES = 150 if SMOKE else 2000  # random queries per dimension
N_KEYS = 16

# section 7: cost
COST_NS = [64, 128, 256] if SMOKE else [128, 256, 512, 1024, 2048, 4096]  # each n twice the last (exercise 1)
COST_HEADS, COST_D_HEAD = 4, 64
COST_REPEATS = 1 if SMOKE else 3
CROSS_D = 256  # width for the measured crossover of projections and mixing (section 7)
CROSS_NS = [64, 256, 1024] if SMOKE else [64, 128, 256, 512, 1024, 2048]

# %% slideshow={"slide_type": "skip"} tags=["setup"]
import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import math

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from course_utils.device import get_device, seed_everything

device = get_device(DEVICE)
seed_everything(SEED)
print(f"device: {device}, SMOKE: {SMOKE}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Why attention
#
# A recurrent encoder–decoder reads the source $x_1 \dots x_T$ into hidden states
# $h_t = f_W(x_t, h_{t-1})$ and hands the decoder **one** vector, the last state
# $c = h_T$. The decoder writes the output from it, $s_t = g_U(y_{t-1}, s_{t-1}, c)$.
# Whatever the sentence's length, everything the decoder will ever know about it has to
# fit in those $D_H$ numbers: a **bottleneck**.
#
# Attention removes it. At every output step the decoder scores every encoder state
# against its own state, turns the scores into weights that sum to one and reads a
# fresh context vector, a weighted sum of the encoder states:
#
# $$e_{t,i} = f_\text{att}(s_{t}, h_i), \qquad a_{t,\cdot} = \operatorname{softmax}(e_{t,\cdot}), \qquad c_t = \sum_i a_{t,i}\, h_i .$$
#
# The weights $a_{t,i}$ say which source word the decoder looks at while writing output
# word $t$: the **alignment**. For English → French it is nearly diagonal, with a
# swapped block where French puts the adjective after the noun.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### A translation task that trains in seconds
#
# Real translation takes hours to learn. We keep real sentences (the English side of
# the course's German–English pairs) and make the "translation" a rule a small model
# learns in a minute: **write the sentence backwards**. Its correct alignment is known
# exactly, the anti-diagonal, so we can check what attention learns. It is also a hard
# case for the bottleneck: the first output word is the last input word, and the last
# output word is the first input word, read all the way through the sentence.

# %% slideshow={"slide_type": "fragment"}
import re
from collections import Counter

from course_utils.data import load_translation_pairs

PAD, BOS, EOS, UNK = 0, 1, 2, 3


def words(sentence: str) -> list[str]:
    """Lower-cased words and punctuation marks: "I’ve made one." -> ['i', '’', 've', 'made', 'one', '.']"""
    return re.findall(r"\w+|[^\w\s]", sentence.lower())


train_sents = [words(en) for _, en in load_translation_pairs("train")]
test_sents = [words(en) for _, en in load_translation_pairs("test")]
counts = Counter(w for s in train_sents for w in s)
itos = ["<pad>", "<bos>", "<eos>", "<unk>"] + [w for w, _ in counts.most_common(VOCAB_SIZE)]
stoi = {w: i for i, w in enumerate(itos)}
keep = lambda sents: [s for s in sents if 3 <= len(s) <= MAX_LEN]
train_sents, test_sents = keep(train_sents), keep(test_sents)[:N_TEST]
print(f"{len(itos)} tokens; {len(train_sents):,} training and {len(test_sents)} test sentences of 3..{MAX_LEN} words")
print("example:", " ".join(test_sents[0]), " ->  ", " ".join(test_sents[0][::-1]))


def encode_batch(sents: list[list[str]]):
    """Sentences -> src (B, S) word ids, tgt (B, S+1) = reversed ids then <eos>, lengths (B,); 0 pads."""
    S = max(map(len, sents))
    src = torch.full((len(sents), S), PAD)
    tgt = torch.full((len(sents), S + 1), PAD)
    for i, s in enumerate(sents):
        ids = torch.tensor([stoi.get(w, UNK) for w in s])
        src[i, : len(s)] = ids
        tgt[i, : len(s)] = ids.flip(0)
        tgt[i, len(s)] = EOS
    return src.to(device), tgt.to(device), torch.tensor([len(s) for s in sents])


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The model: a GRU encoder–decoder, with or without attention
#
# The encoder is a bidirectional GRU; its states $h_i$ are the keys and values. The
# decoder is a GRU that starts from the encoder's final state. Without attention that
# state is all it gets. With attention, each decoder state $s_t$ is a query: the
# attention layer (multi-head, from `course_utils.attention`; sections 2–6 build it and
# prove it equal to PyTorch's) returns a context $c_t$, and the next word is predicted
# from $[s_t; c_t]$ (Luong et al.'s form of Bahdanau attention). The padding mask keeps
# attention off the padding (section 5).

# %% slideshow={"slide_type": "fragment"}
from course_utils.attention import MultiHeadAttention, padding_mask


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; `attention=False` gives the fixed-context baseline."""

    def __init__(self, vocab: int, d_emb: int, d_hidden: int, n_heads: int, attention: bool):
        super().__init__()
        self.emb = nn.Embedding(vocab, d_emb, padding_idx=PAD)
        self.encoder = nn.GRU(d_emb, d_hidden // 2, batch_first=True, bidirectional=True)
        self.decoder = nn.GRU(d_emb, d_hidden, batch_first=True)
        self.attn = MultiHeadAttention(d_hidden, n_heads) if attention else None
        self.out = nn.Linear(2 * d_hidden if attention else d_hidden, vocab)

    def encode(self, src, lengths):
        """src (B, S) -> states h (B, S, H), decoder start state (1, B, H), key mask (B, 1, S)."""
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(src), lengths, batch_first=True, enforce_sorted=False)
        h, last = self.encoder(packed)  # last: (2, B, H/2), true final states
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=src.shape[1])
        start = last.transpose(0, 1).reshape(1, src.shape[0], -1)  # (1, B, H) = [forward; backward]
        return h, start, padding_mask(lengths, src.shape[1]).to(src.device)[:, None, :]

    def decode(self, h, state, mask, prev):
        """prev (B, T) previous words -> logits (B, T, V), new state, weights (B, heads, T, S) or None."""
        s, state = self.decoder(self.emb(prev), state)  # (B, T, H): the queries
        if self.attn is None:
            return self.out(s), state, None
        context, weights = self.attn(s, h, h, mask)  # (B, T, H), (B, heads, T, S)
        return self.out(torch.cat([s, context], dim=-1)), state, weights

    def forward(self, src, lengths, tgt):
        """Teacher forcing: the decoder reads <bos> + the target shifted right."""
        h, state, mask = self.encode(src, lengths)
        prev = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        return self.decode(h, state, mask, prev)[0]

    @torch.no_grad()
    def greedy(self, src, lengths, steps):
        """Write `steps` words one at a time, each from the previous guess; returns ids (B, steps), weights."""
        h, state, mask = self.encode(src, lengths)
        prev, out, weights = torch.full_like(src[:, :1], BOS), [], []
        for _ in range(steps):
            logits, state, w = self.decode(h, state, mask, prev)
            prev = logits.argmax(-1)
            out.append(prev)
            weights.append(w)
        return torch.cat(out, 1), (torch.cat(weights, 2) if weights[0] is not None else None)


# %% [markdown] slideshow={"slide_type": "subslide"}
# Both models get the same data, steps and optimiser. About a minute each on two cores.

# %% slideshow={"slide_type": "fragment"}
import random

from tqdm.auto import tqdm


def train(attention: bool):
    seed_everything(SEED)
    model = Seq2Seq(len(itos), D_EMB, D_HIDDEN, N_HEADS, attention).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    rng, losses = random.Random(SEED), []
    for _ in tqdm(range(TRAIN_STEPS), desc="with attention" if attention else "without attention"):
        src, tgt, lengths = encode_batch(rng.sample(train_sents, BATCH_SIZE))
        logits = model(src, lengths, tgt)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


with_attn, losses_attn = train(attention=True)
no_attn, losses_plain = train(attention=False)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Does the bottleneck show?
#
# We let each model write the held-out sentences backwards on its own (greedy decoding,
# each word from its previous guess) and score the words it gets right, by sentence length.

# %% slideshow={"slide_type": "fragment"}
src, tgt, lengths = encode_batch(test_sents)
pred_attn, test_weights = with_attn.greedy(src, lengths, tgt.shape[1])
pred_plain, _ = no_attn.greedy(src, lengths, tgt.shape[1])
real = tgt != PAD


def word_accuracy_by_length(pred):
    """{length: fraction of target words (incl. <eos>) right}, over the test sentences of that length."""
    right = ((pred == tgt) & real).sum(1).float().cpu() / real.sum(1).float().cpu()
    return {n: right[lengths == n].mean().item() for n in sorted(set(lengths.tolist()))}


acc_attn, acc_plain = word_accuracy_by_length(pred_attn), word_accuracy_by_length(pred_plain)
overall = lambda pred: (((pred == tgt) & real).sum() / real.sum()).item()
print(
    f"word accuracy on {len(test_sents)} held-out sentences: with attention {overall(pred_attn):.1%}, "
    f"without {overall(pred_plain):.1%}"
)
from course_utils.tools.results import record, recording

if recording() and not SMOKE:  # `make run`: into results/01.json (the README's table reads it)
    record(
        "01",
        "gru-reversal",
        {"attention": round(100 * overall(pred_attn), 2), "plain": round(100 * overall(pred_plain), 2)},
        what=f"GRU seq2seq reversing sentences, with vs without attention, {TRAIN_STEPS} steps each; "
        f"words right (incl. <eos>) on {len(test_sents)} held-out sentences, %",
        figure="{attention:.1f} % with attention vs {plain:.1f} % without",
        machine="2-core CPU",
        command="`make run` (notebook 01)",
    )

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.plot(losses_attn, label="with attention")
ax1.plot(losses_plain, label="without (fixed context)")
ax1.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="training loss")
ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
ax1.legend()
ax2.plot(list(acc_attn), list(acc_attn.values()), "o-", label="with attention")
ax2.plot(list(acc_plain), list(acc_plain.values()), "s-", label="without (fixed context)")
ax2.set(xlabel="sentence length (words)", ylabel="words right", ylim=(0, 1.02), title="held-out sentences, greedy")
ax2.legend()
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "fragment"}
if not SMOKE:  # SMOKE trains for a few steps only: nothing to check yet
    long = [n for n in acc_attn if n >= 8]
    gap = np.mean([acc_attn[n] - acc_plain[n] for n in long])
    assert overall(pred_attn) > 0.85, f"the attention model should reverse most words, got {overall(pred_attn):.1%}"
    assert gap > 0.2, f"on sentences of 8+ words attention should beat the fixed context clearly, gap {gap:.2f}"
    print(f"on sentences of 8+ words attention gets {gap:.0%} more words right than the fixed context")


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The alignment it learned
#
# For one held-out sentence: row $t$ is output word $t$, column $i$ is input word $i$,
# the colour is $a_{t,i}$ averaged over the heads. Nobody told the model where to look.


# %% slideshow={"slide_type": "fragment"}
def show_alignment(k: int, weights, title: str, ax=None):
    """Heatmap of weights (T_out, S) for test sentence k, labelled with its words."""
    n = int(lengths[k])
    out_words = [itos[i] for i in pred_attn[k, : n + 1].tolist()]
    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    ax.imshow(weights[: n + 1, :n].cpu(), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(n), [itos[i] for i in src[k, :n].tolist()], rotation=60)
    ax.set_yticks(range(n + 1), out_words)
    ax.set(xlabel="input (English)", ylabel="output (written backwards)", title=title)
    return ax


has_unk = (src == UNK).any(1).cpu()
EXAMPLE = max(range(len(test_sents)), key=lambda i: (not has_unk[i], int(lengths[i]) <= 10, int(lengths[i])))
show_alignment(EXAMPLE, test_weights[EXAMPLE].mean(0), "attention, mean over heads")
plt.show()

# %% slideshow={"slide_type": "fragment"}
# the check behind the picture: for output word t the most-attended input word is n-1-t (the anti-diagonal)
steps = torch.arange(tgt.shape[1], device=device)
expected = lengths.to(device)[:, None] - 1 - steps  # (B, T): the input word to copy
looked_at = test_weights.mean(1).argmax(-1)  # (B, T)
on_words = real & (tgt != EOS)
aligned = ((looked_at == expected) & on_words).sum() / on_words.sum()
print(f"output words whose strongest attention is on the right input word: {aligned:.1%}")
if not SMOKE:
    assert aligned > 0.9, f"the learned alignment should be the anti-diagonal, only {aligned:.1%} is"

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 1). Start from the bottleneck: ask how many numbers the
# fixed-context model has to squeeze a 12-word sentence into (64). Training both models
# live takes about two minutes on a laptop; run the cell before the talk and show the
# curves. Point at the accuracy-by-length plot: without attention the long sentences
# fall apart; with it they do not. Then the heatmap: the anti-diagonal appears without
# any supervision of the weights. Mention Sutskever et al. reversed the *source* to help
# their LSTM, a hack attention made unnecessary.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The generic attention layer, with shapes
#
# Strip the RNN away and attention is a layer of its own. Its inputs:
# **queries** $Q$ ($N_Q \times D_Q$), the things looking, and **inputs** $X$
# ($N_X \times D_X$), the things looked at. Its weights: a key matrix $W_K$
# ($D_X \times D_Q$) and a value matrix $W_V$ ($D_X \times D_V$).
#
# $$K = XW_K, \quad V = XW_V, \quad E = \frac{QK^\top}{\sqrt{D_Q}}, \quad A = \operatorname{softmax}(E, \text{dim}=1), \quad Y = AV .$$
#
# Row $i$ of $A$ is the distribution of query $i$ over the inputs: the softmax runs
# along each row (over the $N_X$ inputs, `dim=1` here, `dim=-1` with batch dimensions
# in front). Output $Y_i = \sum_j A_{ij} V_j$ is a weighted average of values.

# %% slideshow={"slide_type": "subslide"}
N_Q, N_X, D_X, D_Q, D_V = 2, 5, 6, 4, 3
g = torch.Generator().manual_seed(SEED)
Q = torch.randn(N_Q, D_Q, generator=g)
X = torch.randn(N_X, D_X, generator=g)
W_K = torch.randn(D_X, D_Q, generator=g)
W_V = torch.randn(D_X, D_V, generator=g)
print("Q   ", tuple(Q.shape), "  queries     N_Q x D_Q")
print("X   ", tuple(X.shape), "  inputs      N_X x D_X")

# %% slideshow={"slide_type": "fragment"}
K = X @ W_K
V = X @ W_V
print("K = X W_K          ", tuple(K.shape), "  N_X x D_Q: one key per input")
print("V = X W_V          ", tuple(V.shape), "  N_X x D_V: one value per input")

# %% slideshow={"slide_type": "fragment"}
E = Q @ K.T / math.sqrt(D_Q)
A = torch.softmax(E, dim=1)
Y = A @ V
print("E = Q K^T / sqrt(D_Q)", tuple(E.shape), "  N_Q x N_X: every query against every input")
print("A = softmax(E, dim=1)", tuple(A.shape), "  rows sum to", A.sum(dim=1).tolist())
print("Y = A V             ", tuple(Y.shape), "  N_Q x D_V: one output per query")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same five lines, batched and with a mask, are `course_utils.attention.scaled_dot_product_attention`
# (read its source: it adds input checks and the mask of section 5). It returns the
# output and the weights. Both agree with the cells above:

# %% slideshow={"slide_type": "fragment"}
from course_utils.attention import scaled_dot_product_attention

Y_mod, A_mod = scaled_dot_product_attention(Q, K, V)
assert torch.allclose(Y_mod, Y, atol=1e-6) and torch.allclose(A_mod, A, atol=1e-6), "module and cells disagree"
print("course_utils.attention agrees with the step-by-step computation")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### "Thinking Machines", by hand
#
# Jay Alammar's *Illustrated Transformer* works the two-word input *Thinking Machines*.
# Each word has an embedding $x_1, x_2$; three matrices turn it into a query, a key and a
# value. We do it with small whole numbers, $d_\text{model} = 4$ and $d_k = d_v = 3$, so
# you can follow every product on paper.

# %% slideshow={"slide_type": "fragment"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
x = torch.tensor(
    [
        [1.0, 0.0, 1.0, 0.0],  # x1 = "Thinking"
        [0.0, 2.0, 0.0, 2.0],
    ]
)  # x2 = "Machines"
W_Q_tm = torch.tensor([[1.0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]])
W_K_tm = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 1], [1, 0, 0]])
W_V_tm = torch.tensor([[0.0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]])
q, k, v = x @ W_Q_tm, x @ W_K_tm, x @ W_V_tm
print("queries q1, q2:", q.tolist())
print("keys    k1, k2:", k.tolist())
print("values  v1, v2:", v.tolist())
scores = q[0] @ k.T  # q1.k1, q1.k2
scaled = scores / math.sqrt(3)
a = torch.softmax(scaled, dim=0)
z1 = a @ v
print(f"scores q1.k1 = {scores[0]:.0f}, q1.k2 = {scores[1]:.0f};  / sqrt(3) -> {scaled[0]:.3f}, {scaled[1]:.3f}")
print(f"softmax -> a = {a[0]:.3f}, {a[1]:.3f};  z1 = a1 v1 + a2 v2 = {[round(t, 3) for t in z1.tolist()]}")

# %% slideshow={"slide_type": "fragment"}
# the same through the module (all queries at once), and the blog's own numbers:
# q1.k1 = 112, q1.k2 = 96, divided by sqrt(64) = 8 -> 14, 12 -> softmax 0.88, 0.12
z_mod, a_mod = scaled_dot_product_attention(q, k, v)
assert torch.allclose(z_mod[0], z1) and torch.allclose(a_mod[0], a)
blog = torch.softmax(torch.tensor([112.0, 96.0]) / 8, dim=0)
assert torch.allclose(blog, torch.tensor([0.88, 0.12]), atol=5e-3), blog
print("Illustrated Transformer: softmax([112, 96] / 8) =", [round(t, 3) for t in blog.tolist()])

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 2). Write the five equations on the board with their shapes
# first; the cells then only confirm them. Ask which dimension the softmax runs over
# (the inputs, so each query's weights sum to 1) — it is exercise 2's classic
# mistake. The Thinking Machines numbers are small enough to do by hand with the class:
# q1 = (1, 0, 2), k1 = (1, 0, 2), k2 = (2, 2, 0); scores 5 and 2; "Thinking" attends
# mostly to itself (0.85), as in the blog's picture.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Why divide by $\sqrt{d_k}$?
#
# Take $q, k \in \mathbb{R}^{d}$ with independent entries of mean 0 and variance 1. Then
# $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ independent terms of variance 1:
#
# $$\operatorname{Var}(q\cdot k) = d, \qquad \operatorname{std}(q \cdot k) = \sqrt{d}.$$
#
# With $d = 512$ the scores spread over $\pm 20$ and more, and $\operatorname{softmax}$
# of such numbers is almost one-hot. A saturated softmax has almost no gradient: its
# Jacobian $J = \operatorname{diag}(a) - aa^\top$ is zero when $a$ is one-hot. Dividing by
# $\sqrt{d}$ brings the variance back to 1 whatever the width.

# %% slideshow={"slide_type": "subslide"}
DIMS = [2**i for i in range(1, 11)]


def softmax_stats(scores):
    """scores (N, n_keys) -> mean entropy of softmax rows, mean Frobenius norm of the softmax Jacobian."""
    a = scores.softmax(dim=-1)
    entropy = -(a * a.clamp_min(1e-30).log()).sum(-1)
    jac = torch.diag_embed(a) - a[:, :, None] * a[:, None, :]  # (N, n, n): d a_i / d e_j
    return entropy.mean().item(), jac.norm(dim=(1, 2)).mean().item()


g = torch.Generator().manual_seed(SEED)
rows = []
for d in DIMS:
    q = torch.randn(N_QUERIES, 1, d, generator=g)
    k = torch.randn(N_QUERIES, N_KEYS, d, generator=g)
    raw = (q * k).sum(-1)  # (N, n_keys) unscaled dot products
    rows.append((d, raw.var().item(), *softmax_stats(raw), *softmax_stats(raw / math.sqrt(d))))
stats = np.array(rows)
for d, var, *_ in rows:
    assert abs(var / d - 1) < 0.15, f"Var(q.k) should be about d = {d}, measured {var:.1f}"
print("Var(q.k) / d for each d:", np.round(stats[:, 1] / stats[:, 0], 2).tolist())

# %% slideshow={"slide_type": "fragment"}
# the Jacobian formula is the one autograd computes
e = torch.randn(N_KEYS, dtype=torch.float64)
a = e.softmax(-1)
assert torch.allclose(torch.autograd.functional.jacobian(lambda t: t.softmax(-1), e), torch.diag(a) - torch.outer(a, a))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.plot(stats[:, 0], stats[:, 2], "o-", label=r"$q\cdot k$ (unscaled)")
ax1.plot(stats[:, 0], stats[:, 4], "s-", label=r"$q\cdot k/\sqrt{d}$")
ax1.axhline(math.log(N_KEYS), ls=":", c="gray", label=f"uniform over {N_KEYS} keys")
ax1.set(xscale="log", xlabel="d", ylabel="entropy of the weights (nats)", title="softmax saturates without scaling")
ax2.plot(stats[:, 0], stats[:, 3], "o-", label="unscaled")
ax2.plot(stats[:, 0], stats[:, 5], "s-", label="scaled")
ax2.set(
    xscale="log",
    yscale="log",
    xlabel="d",
    ylabel=r"$\|\partial a / \partial e\|_F$",
    title="... and its gradient vanishes",
)
for ax in (ax1, ax2):
    ax.legend()
plt.tight_layout()
plt.show()
assert stats[-1, 2] < 0.5 * stats[-1, 4], "at d = 1024 the unscaled softmax should be far more peaked"
assert stats[-1, 3] < 0.5 * stats[-1, 5], "at d = 1024 the unscaled softmax should have a much smaller gradient"
assert abs(stats[-1, 4] - stats[0, 4]) < 0.3, "scaled entropy should not depend on d"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Move $d$: one query against 16 random keys. Unscaled, the weights collapse onto one key
# as $d$ grows; scaled, they keep the same spread.

# %% slideshow={"slide_type": "fragment"}
from course_utils.tools.widgets import interact

g = torch.Generator().manual_seed(SEED + 1)
q_demo, k_demo = torch.randn(1, 1024, generator=g), torch.randn(N_KEYS, 1024, generator=g)


def show_scaling(d=256):
    raw = q_demo[:, :d] @ k_demo[:, :d].T  # (1, 16)
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.6), sharey=True)
    for ax, s, name in ((axes[0], raw, "unscaled  q.k"), (axes[1], raw / math.sqrt(d), "scaled  q.k / sqrt(d)")):
        w = s.softmax(-1)[0]
        H = -(w * w.clamp_min(1e-30).log()).sum()
        ax.bar(range(N_KEYS), w.numpy())
        ax.set(title=f"{name}: max {w.max():.2f}, entropy {H:.2f}", xlabel="key", ylim=(0, 1))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # keys are numbered, not measured
    axes[0].set_ylabel(f"weight (d = {d})")
    plt.show()


interact(show_scaling, d=(1, 1024, 1))

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 3). The whole argument is one line: variance of a sum of d
# unit-variance products is d. Show the left plot first (entropy falls to ~0 without
# scaling), then the right (the gradient through the softmax follows it down, by orders
# of magnitude at d = 1024). In the widget, slide d from 4 to 1024 on the unscaled side.
# Question to ask: why sqrt(d) and not d? (Dividing by d would shrink the scores to
# zero and make every softmax uniform.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Self-attention, and what it does not know
#
# In **self-attention** the queries come from the inputs too: $Q = XW_Q$, $K = XW_K$,
# $V = XW_V$, so each of the $N_X$ inputs asks about all the others (and itself).
#
# Permute the inputs with a permutation $s$. The rows of $Q$, $K$, $V$ are permuted the
# same way, $E$'s rows *and* columns are permuted, the softmax runs within rows, so the
# outputs are simply permuted: $f(s(X)) = s(f(X))$. Self-attention is **permutation
# equivariant**: it treats its input as a *set*. "dog bites man" and "man bites dog" give
# the same three output vectors, in a different order.

# %% slideshow={"slide_type": "subslide"}
g = torch.Generator().manual_seed(SEED)
n, d_x, d_q = 6, 8, 4
X = torch.randn(n, d_x, generator=g, dtype=torch.float64)
W_Q, W_K, W_V = (torch.randn(d_x, d_q, generator=g, dtype=torch.float64) for _ in range(3))


def self_attention(X):
    return scaled_dot_product_attention(X @ W_Q, X @ W_K, X @ W_V)[0]


perm = torch.randperm(n, generator=g)
print("permutation:", perm.tolist())
assert torch.allclose(self_attention(X[perm]), self_attention(X)[perm], atol=1e-12), "f(s(X)) != s(f(X))"
print("f(s(X)) == s(f(X)): self-attention is permutation equivariant")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Word order matters in language, so the transformer adds a **position** vector $p_i$ to
# each input, $x_i + p_i$. Now a permuted sentence is a different input, and the outputs
# change, not only their order. Notebook 02 builds those position vectors.

# %% slideshow={"slide_type": "fragment"}
P = torch.randn(n, d_x, generator=g, dtype=torch.float64)  # any fixed vector per position
with_pos = lambda X: self_attention(X + P)
diff = (with_pos(X[perm]) - with_pos(X)[perm]).abs().max().item()
assert diff > 1e-3, "with positions added, permuting the input should change more than the order"
print(f"with positions: f(s(X)) and s(f(X)) differ by up to {diff:.3f}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 4). Walk the permutation through Q, K, V, E (rows and
# columns), A (softmax per row keeps it), Y. Then the punchline: without positions a
# transformer is a bag-of-words model. Our section-1 model was not, because its GRUs
# read the words in order; a transformer has no recurrence and needs notebook 02.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Masks: who may attend to whom
#
# A mask is a boolean matrix of the scores' shape, **`True` = may attend** (the convention
# of `F.scaled_dot_product_attention`, used throughout the course). It is applied
# **before** the softmax, by setting the blocked scores to $-\infty$:
#
# $$A_{ij} = \frac{\exp(E_{ij})\,[M_{ij}]}{\sum_{j'} \exp(E_{ij'})\,[M_{ij'}]}$$
#
# so a blocked position gets exactly zero weight and the rest still sum to one. (Zeroing
# weights *after* the softmax leaves rows that no longer sum to one.)
#
# - **Causal** mask: a decoder predicting word $i$ must not see words after $i$: $M_{ij} = [j \le i]$.
# - **Padding** mask: sequences of different lengths are padded to one length; no query
#   may attend to a padding key.

# %% slideshow={"slide_type": "subslide"}
from course_utils.attention import causal_mask

lens_demo = [6, 4, 2]
T = 6
causal = causal_mask(T)  # (T, T)
pad = padding_mask(lens_demo, T)  # (B, T): True = real token
both = causal & pad[:, None, :]  # (B, T, T): causal AND real key

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
axes[0].imshow(causal, cmap="Greens", vmin=0, vmax=1.4)
axes[0].set(title="causal_mask(6)", xlabel="key j", ylabel="query i")
axes[1].imshow(pad, cmap="Greens", vmin=0, vmax=1.4)
axes[1].set(title=f"padding_mask({lens_demo})", xlabel="position", ylabel="sequence")
for b, ax in zip((1, 2), axes[2:]):
    ax.imshow(both[b], cmap="Greens", vmin=0, vmax=1.4)
    ax.set(title=f"causal & padding, length {lens_demo[b]}", xlabel="key j", ylabel="query i")
fig.suptitle("dark = True = may attend", y=1.02)
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "fragment"}
g = torch.Generator().manual_seed(SEED)
q = torch.randn(3, T, 8, generator=g)
out, w = scaled_dot_product_attention(q, q, q, both)
print("weights of sequence 1 (length 4), causal + padding:\n", w[1].numpy().round(2))
assert (w[~both] == 0).all(), "blocked positions must get exactly zero weight"
assert torch.allclose(w.sum(-1), torch.ones(3, T)), "each row of weights must sum to one"
print("blocked positions: exactly 0; every row sums to 1")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Two traps. **Conventions differ**: `nn.MultiheadAttention`'s `attn_mask` and
# `key_padding_mask` use `True` = *blocked*, the opposite of ours; pass `~mask`. And a
# query whose every key is blocked has no distribution at all (softmax of all $-\infty$
# is NaN). Our function returns zeros for such a row, as PyTorch's SDPA does; with a
# causal mask and right padding it never happens, since every query sees key 0.

# %% slideshow={"slide_type": "fragment"}
m = torch.ones(2, 3, dtype=torch.bool)
m[1] = False  # query 1 may attend to nothing
q, k, v = torch.randn(2, 4), torch.randn(3, 4), torch.randn(3, 4)
out, w = scaled_dot_product_attention(q, k, v, m)
print("fully blocked row -> weights", w[1].tolist(), " output", out[1].tolist())
assert (w[1] == 0).all() and (out[1] == 0).all() and torch.isfinite(out).all()
assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m), atol=1e-6), "PyTorch agrees"

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 5). Draw the causal mask as the lower triangle and the
# padding as columns blocked. The combined mask is an AND. Stress "before the softmax":
# -inf becomes exp(-inf) = 0 and the row renormalises by itself. Warn about the
# opposite boolean convention of nn.MultiheadAttention; section 6 converts it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Multi-head attention
#
# One softmax gives each query one distribution: it can look at one thing at a time.
# **Multi-head** attention runs $h$ attentions in parallel, each on its own
# $d_\text{model}/h$-dimensional slice of learned projections, and mixes the results:
#
# $$\text{head}_j = \operatorname{Attention}(QW^Q_j, KW^K_j, VW^V_j), \qquad
#   \operatorname{MultiHead}(Q, K, V) = [\text{head}_1; \dots; \text{head}_h]\,W^O .$$
#
# In code the $h$ projections are one $d_\text{model} \times d_\text{model}$ matrix;
# **splitting heads** reshapes its output $(B, T, D)$ to $(B, T, h, D/h)$ and moves the
# head dimension forward, $(B, h, T, D/h)$, so the batched attention runs per head;
# **merging** undoes it, and $W^O$ (`out_proj`) mixes the heads. The cost is the same as
# one big head.

# %% slideshow={"slide_type": "subslide"}
from course_utils.attention import merge_heads, split_heads

x_demo = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)  # (B=2, T=3, D=8)
heads = split_heads(x_demo, 4)  # (B, h=4, T, D/h=2)
print(
    "x",
    tuple(x_demo.shape),
    "-> split_heads(x, 4)",
    tuple(heads.shape),
    "-> merge_heads",
    tuple(merge_heads(heads).shape),
)
print("token 0 of sequence 0:", x_demo[0, 0].tolist())
print("its slices, head by head:", heads[0, :, 0].tolist())
assert torch.equal(merge_heads(heads), x_demo)
assert torch.equal(heads[0, 1, 2], x_demo[0, 2, 2:4]), "head 1 of token 2 is features 2..3 of token 2"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Proved equal to PyTorch
#
# `MultiHeadAttention.from_torch` copies an `nn.MultiheadAttention`'s weights (PyTorch
# packs $W^Q, W^K, W^V$ into one `in_proj_weight`). Same weights, same inputs: the
# outputs and per-head weights must agree to $10^{-5}$, for self-attention with a causal
# mask and cross-attention with padding. PyTorch's masks mean the opposite (`True` =
# blocked) and its 3-D masks are per (batch × head): we convert.

# %% slideshow={"slide_type": "fragment"}
seed_everything(SEED)
B, T_q, T_k, D, H = 3, 7, 9, 32, 4
ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
with torch.no_grad():  # torch starts biases at 0: make them count
    ref.in_proj_bias.normal_()
    ref.out_proj.bias.normal_()
mha = MultiHeadAttention.from_torch(ref)
x = torch.randn(B, T_q, D)
memory = torch.randn(B, T_k, D)
mem_lengths = [9, 5, 2]

# self-attention with a causal mask
out_ref, w_ref = ref(x, x, x, attn_mask=~causal_mask(T_q), average_attn_weights=False)
out, w = mha(x, x, x, mask=causal_mask(T_q))
err_self = max((out - out_ref).abs().max().item(), (w - w_ref).abs().max().item())
# cross-attention: decoder states attend to an encoder memory with padding
keep = padding_mask(mem_lengths, T_k)  # (B, T_k), True = real
out_ref, w_ref = ref(x, memory, memory, key_padding_mask=~keep, average_attn_weights=False)
out, w = mha(x, memory, memory, mask=keep[:, None, :])
err_cross = max((out - out_ref).abs().max().item(), (w - w_ref).abs().max().item())
print(f"largest difference to nn.MultiheadAttention: self+causal {err_self:.1e}, cross+padding {err_cross:.1e}")
assert err_self < 1e-5 and err_cross < 1e-5, "MultiHeadAttention should equal nn.MultiheadAttention"

# %% [markdown] slideshow={"slide_type": "fragment"}
# And the plain attention against `F.scaled_dot_product_attention` (PyTorch's fused
# kernel), on random shapes and masks: to $10^{-6}$ in float32 and $10^{-10}$ in float64.

# %% slideshow={"slide_type": "fragment"}
g = torch.Generator().manual_seed(SEED)
worst = {torch.float32: 0.0, torch.float64: 0.0}
for trial in range(20):
    dtype = torch.float32 if trial % 2 else torch.float64
    b, h, tq, tk, dk, dv = (int(t) for t in torch.randint(1, 9, (6,), generator=g))
    q, k, v = (torch.randn(b, h, t, dim, generator=g, dtype=dtype) for t, dim in ((tq, dk), (tk, dk), (tk, dv)))
    mask = torch.rand(b, 1, tq, tk, generator=g) < 0.7
    mask[..., 0] = True  # every query keeps one key
    ours, _ = scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    worst[dtype] = max(worst[dtype], (ours - theirs).abs().max().item())
print(
    f"largest difference to F.scaled_dot_product_attention: float32 {worst[torch.float32]:.1e}, "
    f"float64 {worst[torch.float64]:.1e}"
)
assert worst[torch.float32] < 1e-6 and worst[torch.float64] < 1e-10
if recording() and not SMOKE:
    record(
        "01",
        "attention-vs-pytorch",
        {
            "sdpa_f32": worst[torch.float32],
            "sdpa_f64": worst[torch.float64],
            "mha_self": err_self,
            "mha_cross": err_cross,
        },
        what="our attention vs `F.scaled_dot_product_attention` (20 random shapes and masks) / `nn.MultiheadAttention` "
        "(self + causal, cross + padding): largest difference",
        figure="{sdpa_f32:.1e} (float32), {sdpa_f64:.1e} (float64) / {mha_self:.1e}, {mha_cross:.1e}",
        machine="2-core CPU",
        command="`make run` (asserted in notebook 01)",
    )

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### What the heads of the section-1 model look at
#
# The reversal model has 4 heads. Each one's weights for the same sentence:

# %% slideshow={"slide_type": "fragment"}
fig, axes = plt.subplots(1, N_HEADS, figsize=(4 * N_HEADS, 4))
for j, ax in enumerate(np.atleast_1d(axes)):
    show_alignment(EXAMPLE, test_weights[EXAMPLE, j], f"head {j}", ax=ax)
    if j:
        ax.set_ylabel("")
plt.tight_layout()
plt.show()
per_head = [
    (((test_weights[:, j].argmax(-1) == expected) & on_words).sum() / on_words.sum()).item() for j in range(N_HEADS)
]
print("share of output words each head points at the right input word:", [f"{p:.0%}" for p in per_head])


# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 6). Draw (B, T, D) -> (B, T, h, D/h) -> (B, h, T, D/h): the
# reshape comes first, then the transpose (exercise 4's trap; exercise 5 assembles this
# whole module). Then the two equality checks: they are the reason notebooks 04-08 may
# trust course_utils.attention.
# On the heads: in this tiny task several heads learn the same anti-diagonal, others
# look at a neighbour or spread out; W_O learns which to trust. In big models heads
# specialise more (Vaswani et al., figure 3).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. What attention costs
#
# Count the multiply-adds of one self-attention layer over $n$ words of width $d$ (all heads
# together, as the heads split $d$ between them). Two kinds of work:
# - **projections**: $Q$, $K$, $V$ and the output $W_O$, four $n \times d$ by $d \times d$
#   products: $4 n d^2$;
# - **mixing**: the scores $QK^\top$ and the weighted sum $AV$, each $n^2 d$: $2 n^2 d$,
#   plus an $n \times n$ weight matrix per head that has to be stored.
#
# A recurrent layer multiplies each position by its $d \times d$ matrices, about $n d^2$ times
# a small constant, and a convolution of width $k$ costs $k\, n d^2$. So comparing $n^2 d$ with
# $n d^2$ ("attention is cheaper while $n < d$") counts only the mixing: with the projections a
# self-attention layer does *more* arithmetic than a plain recurrent one at every length. What
# it buys is in the other two columns of the paper's table: no step waits for the previous one,
# and any two words are one step apart.

# %% [markdown] slideshow={"slide_type": "subslide"}
# Vaswani et al. (2017), Table 1: per layer, for sequence length $n$, width $d$, kernel width $k$,
# neighbourhood $r$ of restricted attention.
#
# | layer | operations per layer | sequential operations | longest path between two positions |
# |---|---|---|---|
# | self-attention | $O(n^2 \cdot d)$ | $O(1)$ | $O(1)$ |
# | recurrent | $O(n \cdot d^2)$ | $O(n)$ | $O(n)$ |
# | convolutional | $O(k \cdot n \cdot d^2)$ | $O(1)$ | $O(\log_k n)$ |
# | self-attention, restricted to $r$ neighbours | $O(r \cdot n \cdot d)$ | $O(1)$ | $O(n / r)$ |
#
# The table's first column leaves out the $n d^2$ projections every row shares. Counted in
# full, the mixing overtakes the projections where $2 n^2 d = 4 n d^2$, at $n = 2d$:


# %% slideshow={"slide_type": "subslide"} tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
def layer_cost(n, d):
    """Multiply-adds of one self-attention layer: (projections 4 n d^2, mixing 2 n^2 d)."""
    return 4 * n * d * d, 2 * n * n * d


print(f"{'n':>7} {'d':>5} {'projections 4nd^2':>18} {'mixing 2n^2d':>19} {'RNN ~nd^2':>16}   larger part")
for n_, d_ in [(70, 1000), (512, 512), (1024, 512), (4096, 1000), (100_000, 1000)]:
    proj, mix = layer_cost(n_, d_)
    print(
        f"{n_:>7,} {d_:>5} {proj:>18,} {mix:>19,} {n_ * d_ * d_:>16,}   {'mixing' if mix > proj else 'projections' if proj > mix else 'equal'}"
    )
assert layer_cost(1024, 512)[0] == layer_cost(1024, 512)[1], "the two parts are equal at n = 2d"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Counted is not measured: the mixing runs as batched small products and a softmax, which a CPU
# does less efficiently per multiply-add than one big projection. Time both parts of one layer
# ($d$ = `CROSS_D`, 4 heads) on this machine and find where the mixing starts to take longer.

# %% slideshow={"slide_type": "fragment"}
from course_utils.measure import best_time

proj_layers = torch.nn.ModuleList(torch.nn.Linear(CROSS_D, CROSS_D, bias=False) for _ in range(4))
crossing = []
for n_ in CROSS_NS:
    x = torch.randn(1, n_, CROSS_D)
    with torch.no_grad():
        q, k, v = (split_heads(layer(x), 4) for layer in proj_layers[:3])  # (1, 4, n, d/4) each
        t_proj = best_time(lambda: [layer(x) for layer in proj_layers], repeats=COST_REPEATS)
        t_mix = best_time(lambda: scaled_dot_product_attention(q, k, v), repeats=COST_REPEATS)
    crossing.append((n_, t_proj, t_mix))
    print(f"n = {n_:>5}: projections {1e3 * t_proj:7.2f} ms, mixing {1e3 * t_mix:7.2f} ms, ratio {t_mix / t_proj:5.2f}")
measured = next((n_ for n_, tp, tm in crossing if tm > tp), None)
if recording() and not SMOKE:  # timings: noisy, reported and never asserted
    record(
        "01",
        "projections-vs-mixing",
        {**{f"ratio_{n_}": round(tm / tp, 2) for n_, tp, tm in crossing}, "crossover": measured or 0},
        what=f"one self-attention layer, d = {CROSS_D}, 4 heads: time of the mixing (2n²d) over the projections "
        f"(4nd²), counted crossover n = 2d = {2 * CROSS_D}",
        figure=", ".join(f"n = {n_}: {{ratio_{n_}:.2f}}" for n_, _, _ in crossing)
        + "; the mixing first takes longer at n = {crossover} (0: not reached)",
        machine="2-core CPU (timings are noisy)",
        command="`make run` (notebook 01, section 7)",
    )
print(
    f"counted crossover n = 2d = {2 * CROSS_D}; measured here: "
    + (f"the mixing first takes longer at n = {measured}" if measured else f"not reached by n = {CROSS_NS[-1]}")
)

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.loglog([c[0] for c in crossing], [1e3 * c[1] for c in crossing], "o-", label="projections (4 n d²)")
ax.loglog([c[0] for c in crossing], [1e3 * c[2] for c in crossing], "s-", label="mixing (2 n² d)")
ax.axvline(2 * CROSS_D, ls=":", c="gray", label=f"counted crossover n = 2d = {2 * CROSS_D}")
ax.set(xlabel="sequence length n", ylabel="time (ms)", title=f"one self-attention layer, d = {CROSS_D}, this machine")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Measured: ours against the fused kernel
#
# Our attention materialises the scores and the weights, two $n \times n$ matrices per
# head. PyTorch's `F.scaled_dot_product_attention` picks a *fused* kernel (FlashAttention
# on GPUs, a tiled kernel on CPUs) that computes the softmax block by block and never
# stores the whole matrix. `time_and_memory` (in `course_utils.measure`, also used by
# `benchmarks/attention.py`) reports the best of a few runs and the peak extra memory.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 1: predict before you measure (1 point)
#
# The cell after the test measures the peak memory of our attention for sequence lengths
# $n$ that double each time (`COST_NS`). Before you run it: when $n$ doubles, by about how
# much does the peak memory of **our** attention grow?
#
# - **a**: about 2× (it grows like $n$, as the queries, keys and values do)
# - **b**: about 4× (it grows like $n^2$)
# - **c**: about 8× (it grows like $n^3$)
# - **d**: it stays about the same
#
# Make `prediction()` return your letter, e.g. `return "a"`.


# %% nbgrader={"grade": false, "grade_id": "memory-prediction-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def prediction():
    """Your prediction: "a", "b", "c" or "d"."""
    ### BEGIN SOLUTION
    return "b"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "memory-prediction-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
from course_utils.tools.grading import call, expect_choice

CHOICES = ["a", "b", "c", "d"]
expect_choice(call(prediction), CHOICES, "your prediction")
print("visible tests passed: your prediction is one of the choices; the measurement below settles it")
### BEGIN HIDDEN TESTS
expect_choice(
    call(prediction),
    CHOICES,
    "your prediction",
    correct="b",
    why="The measurement after it prints the growth per doubling of n: close to 4x, the two n x n matrices per head.",
)
### END HIDDEN TESTS

# %% slideshow={"slide_type": "fragment"}
from course_utils.measure import time_and_memory

cost = []
for n_ in tqdm(COST_NS, desc="n"):
    g = torch.Generator(device=device).manual_seed(n_)
    q, k, v = (torch.randn(1, COST_HEADS, n_, COST_D_HEAD, generator=g, device=device) for _ in range(3))
    t_ours, m_ours = time_and_memory(lambda: scaled_dot_product_attention(q, k, v), device, COST_REPEATS)
    t_fused, m_fused = time_and_memory(lambda: F.scaled_dot_product_attention(q, k, v), device, COST_REPEATS)
    cost.append((n_, t_ours, t_fused, m_ours, m_fused))
cost = np.array(cost)
print(f"{'n':>6} {'ours ms':>9} {'fused ms':>9} {'ratio':>6} {'ours MiB':>9} {'fused MiB':>9}")
for n_, t_o, t_f, m_o, m_f in cost:
    print(f"{int(n_):>6} {t_o * 1e3:9.2f} {t_f * 1e3:9.2f} {t_o / t_f:6.2f} {m_o / 2**20:9.2f} {m_f / 2**20:9.2f}")
print(
    f"at n = {int(cost[-1, 0])}: ours takes {cost[-1, 1] / cost[-1, 2]:.1f}x the time and "
    f"{cost[-1, 3] / max(cost[-1, 4], 1):.0f}x the memory of the fused kernel ({device})"
)
growth = cost[1:, 3] / cost[:-1, 3]  # peak memory of ours at n against n / 2
print("each time n doubles, the peak memory of ours grows", ", ".join(f"x{r:.1f}" for r in growth))

# %% slideshow={"slide_type": "fragment"}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ns = cost[:, 0]
ax1.loglog(ns, cost[:, 1] * 1e3, "o-", label="ours")
ax1.loglog(ns, cost[:, 2] * 1e3, "s-", label="fused SDPA")
ax1.loglog(ns, cost[-1, 1] * 1e3 * (ns / ns[-1]) ** 2, ":", c="gray", label=r"$\propto n^2$")
ax1.set(xlabel="n (tokens)", ylabel="ms per forward", title=f"time, {COST_HEADS} heads x d={COST_D_HEAD}")
ax2.loglog(ns, cost[:, 3] / 2**20, "o-", label="ours")
ax2.loglog(ns, np.maximum(cost[:, 4], 1) / 2**20, "s-", label="fused SDPA")
ax2.loglog(ns, 2 * COST_HEADS * ns**2 * 4 / 2**20, ":", c="gray", label=r"$2\,h\,n^2$ floats")
ax2.set(xlabel="n (tokens)", ylabel="peak extra MiB", title="memory")
for ax in (ax1, ax2):
    ax.set_xticks(ns, [str(int(n_)) for n_ in ns])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.legend()
plt.tight_layout()
plt.show()
n_big = cost[-1, 0]
assert cost[-1, 3] >= 2 * COST_HEADS * n_big**2 * 4, "ours should hold two (h, n, n) float32 matrices at once"
assert cost[-1, 4] < cost[-1, 3] / 4, "the fused kernel should need far less memory than ours"
assert ((growth > 3) & (growth < 4.5)).all(), f"doubling n should multiply our memory by about 4, got {growth}"


# %% [markdown] slideshow={"slide_type": "fragment"}
# **The answer to exercise 1 is b, about 4×.** Ours holds the scores and the weights, two
# $n \times n$ matrices per head, and $(2n)^2 = 4n^2$. The printed factors sit a little
# below 4 for small $n$, where the $n \times d$ queries and outputs still count, and approach 4
# as $n$ grows: the $n^2$ term takes over. The fused kernel never stores the matrix, so its
# memory stays far below ours.

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (section 7). Read the table: at sentence lengths the projections are
# most of the layer's work; past n = 2d the n^2 mixing dominates. The measured memory of ours follows
# 2 h n^2 floats exactly (scores + weights), while the fused kernel stays near the size
# of its output. Time ratios on a CPU are modest and noisy (2 shared cores); on a GPU
# the fused kernel is many times faster. Notebook 08 attacks the n^2 itself. Take the
# room's vote on exercise 1 (x2, x4 or x8 per doubling?) before running the measurement;
# the printed growth factors settle it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Exercises
#
# Four more exercises, graded automatically (the first, the prediction, came before the
# measurement in section 7). Replace `raise NotImplementedError()` in each answer cell, then
# run the test cell below it. Do not call `course_utils.attention` or
# `F.scaled_dot_product_attention` in your answers: build them from tensor operations (the
# tests refuse those helpers). Exercise 5 puts exercises 2 and 4 together into multi-head
# attention.
#
# ### Exercise 2: softmax attention (3 points)
#
# Write `softmax_attention(q, k, v, mask=None)` for tensors with any leading dimensions:
# q $(\dots, T_q, d_k)$, k $(\dots, T_k, d_k)$, v $(\dots, T_k, d_v)$, and an optional boolean
# mask broadcastable to $(\dots, T_q, T_k)$ with `True` = may attend. Return
# `(output, weights)`: output $(\dots, T_q, d_v)$, weights $(\dots, T_q, T_k)$, in the dtype of q.
# Apply the mask before the softmax. You may assume every query keeps at least one key.


# %% nbgrader={"grade": false, "grade_id": "softmax-attention-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def softmax_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v with an optional boolean mask (True = may attend)."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "softmax-attention-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math

import torch
from course_utils.tools.exercises.ex01_attention import (
    attention_example,
    check_softmax_attention,
    softmax_attention_properties,
)

# worked by hand: two queries, two keys, d_k = 4, so the scores are divided by sqrt(4) = 2
ln3 = math.log(3.0)
q = torch.tensor([[ln3, ln3, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
k = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
v = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
# query 1: scores (0, 2 ln 3) / 2 = (0, ln 3) -> weights (1/4, 3/4) -> output 1/4 (4, 0) + 3/4 (0, 4) = (1, 3)
# query 2: scores (2, 2) / 2 = (1, 1) -> weights (1/2, 1/2) -> output (2, 2)
attention_example(
    softmax_attention,
    q,
    k,
    v,
    None,
    output=torch.tensor([[1.0, 3.0], [2.0, 2.0]]),
    weights=torch.tensor([[0.25, 0.75], [0.5, 0.5]]),
    what="of the hand-worked example",
)
# the same with query 2 allowed to see key 1 only: all its weight goes there, output = v1 = (4, 0)
attention_example(
    softmax_attention,
    q,
    k,
    v,
    torch.tensor([[True, True], [True, False]]),
    output=torch.tensor([[1.0, 3.0], [4.0, 0.0]]),
    weights=torch.tensor([[0.25, 0.75], [1.0, 0.0]]),
    what="of the hand-worked example with a mask",
)
softmax_attention_properties(softmax_attention)  # shapes, rows sum to 1, blocked keys get 0, keys in any order
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_softmax_attention(softmax_attention)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 3: the decoder's mask (2 points)
#
# A decoder over a padded batch needs both masks at once. Write
# `causal_padding_mask(lengths, T)`: for a list of sequence lengths (each $\le T$) return a
# boolean tensor of shape $(B, T, T)$ where entry $[b, i, j]$ is `True` when query $i$ of
# sequence $b$ may attend to key $j$: $j$ is not in the future of $i$ **and** $j$ is a real
# token of sequence $b$ (not padding). Queries at padded positions follow the same rule.


# %% nbgrader={"grade": false, "grade_id": "causal-mask-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def causal_padding_mask(lengths, T):
    """(B, T, T) bool: [b, i, j] = (j <= i) and (j < lengths[b])."""
    ### BEGIN SOLUTION
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return causal[None, :, :] & real[:, None, :]  # (B, T, T)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal-mask-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex01_attention import (
    causal_padding_mask_mistakes,
    causal_padding_mask_properties,
    check_causal_padding_mask,
)
from course_utils.tools.grading import call, expect_equal

# worked by hand, T = 3: sequence 0 has 3 real tokens (the lower triangle), sequence 1 has 1 (only key 0)
expect_equal(
    call(causal_padding_mask, [3, 1], 3),
    torch.tensor(
        [
            [[True, False, False], [True, True, False], [True, True, True]],
            [[True, False, False], [True, False, False], [True, False, False]],
        ]
    ),
    "causal_padding_mask([3, 1], 3)",
    mistakes=causal_padding_mask_mistakes([3, 1], 3),
)
causal_padding_mask_properties(causal_padding_mask)  # bool, (B, T, T), no future, no padded key, itself allowed
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_causal_padding_mask(causal_padding_mask)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 4: splitting and merging heads (3 points)
#
# Write `split_heads_(x, n_heads)`: $(B, T, D) \to (B, h, T, D/h)$, where head $j$ gets
# features $jD/h \dots (j+1)D/h - 1$ of every token, and `merge_heads_(x)`:
# $(B, h, T, d_h) \to (B, T, h\,d_h)$, its inverse (the heads concatenated per token).
# (The trailing underscore keeps them apart from `course_utils.attention`'s versions, which
# the tests refuse here.)


# %% nbgrader={"grade": false, "grade_id": "heads-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def split_heads_(x, n_heads):
    """(B, T, D) -> (B, h, T, D/h)."""
    ### BEGIN SOLUTION
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(1, 2)
    ### END SOLUTION


def merge_heads_(x):
    """(B, h, T, d_h) -> (B, T, h * d_h)."""
    ### BEGIN SOLUTION
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_h)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "heads-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import torch
from course_utils.tools.exercises.ex01_attention import check_heads, heads_properties, merge_mistakes, split_mistakes
from course_utils.tools.grading import call, expect_equal

# worked by hand: 3 tokens of 4 features, 2 heads: head 0 gets features 0-1 of each token, head 1 features 2-3
x = torch.tensor([[[0.0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]])  # (B=1, T=3, D=4)
heads = torch.tensor([[[[0.0, 1], [4, 5], [8, 9]], [[2, 3], [6, 7], [10, 11]]]])  # (B=1, h=2, T=3, 2)
expect_equal(call(split_heads_, x, 2), heads, "split_heads_(x, 2) of the hand-worked x", mistakes=split_mistakes(x, 2))
expect_equal(call(merge_heads_, heads), x, "merge_heads_ of the hand-worked heads", mistakes=merge_mistakes(heads))
heads_properties(split_heads_, merge_heads_)  # shapes, dtype, merge(split(x)) == x
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_heads(split_heads_, merge_heads_)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Exercise 5: multi-head attention, assembled (4 points)
#
# Write `multi_head_attention(mha, query, key, value, mask=None)`: what `mha(query, key,
# value, mask)` returns, for `mha` a `MultiHeadAttention` of `course_utils.attention`
# (section 6), built from its parts:
#
# 1. project: `mha.q_proj(query)`, `mha.k_proj(key)`, `mha.v_proj(value)` (three `nn.Linear`
#    layers, each $(B, T, d_\text{model}) \to (B, T, d_\text{model})$);
# 2. split each into `mha.n_heads` heads, $(B, h, T, d_\text{head})$ with
#    $d_\text{head} = d_\text{model} / h$ (exercise 4);
# 3. softmax attention in every head at once (exercise 2), with the mask: `None`, one
#    $(T_q, T_k)$ mask for every sequence, or a $(B, T_q, T_k)$ mask, the same for every head
#    (give it a head dimension first);
# 4. merge the heads back to $(B, T_q, d_\text{model})$ and mix them with `mha.out_proj` ($W^O$).
#
# query is $(B, T_q, d_\text{model})$, key and value $(B, T_k, d_\text{model})$. Return
# `(output, weights)`: output $(B, T_q, d_\text{model})$, weights $(B, h, T_q, T_k)$. Write every
# step with tensor operations: calling `mha(...)`, `split_heads`, `merge_heads` or
# `scaled_dot_product_attention` is not allowed here. The tests compare your function with
# `mha` itself on random weights.


# %% nbgrader={"grade": false, "grade_id": "mha-answer", "locked": false, "schema_version": 3, "solution": true, "task": false} slideshow={"slide_type": "fragment"}
def multi_head_attention(mha, query, key, value, mask=None):
    """mha(query, key, value, mask) from its parts: project, split into heads, attend per head, merge, W_O."""
    ### BEGIN SOLUTION
    h = mha.n_heads
    q, k, v = mha.q_proj(query), mha.k_proj(key), mha.v_proj(value)  # (B, T, d_model)
    B, T_q, D = q.shape
    T_k = k.shape[1]
    d_head = D // h
    # split: (B, T, D) -> (B, T, h, d_head) -> (B, h, T, d_head)
    q = q.reshape(B, T_q, h, d_head).transpose(1, 2)
    k = k.reshape(B, T_k, h, d_head).transpose(1, 2)
    v = v.reshape(B, T_k, h, d_head).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)  # (B, h, T_q, T_k): each head is d_head wide
    if mask is not None:
        if mask.dim() == 3:  # (B, T_q, T_k): the same for every head
            mask = mask[:, None]
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # over the keys
    out = weights @ v  # (B, h, T_q, d_head)
    out = out.transpose(1, 2).reshape(B, T_q, D)  # merge: the heads side by side, per token
    return mha.out_proj(out), weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mha-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} slideshow={"slide_type": "fragment"} tags=["raises-exception"]
import math

import torch
from course_utils.tools.exercises.ex01_attention import (
    check_multi_head_attention,
    example_mha,
    mha_example,
    multi_head_attention_properties,
)

# worked by hand: d_model = 2 and 2 heads of width 1 (no scaling: sqrt(1) = 1); W_Q = W_K = W_V = I,
# W_O swaps the two features, biases 0. One query (1, 2) against two keys (0, 0) and (ln 3, ln 3).
ln3 = math.log(3.0)
identity, swap = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
mha = example_mha(2, identity, identity, identity, swap)
query = torch.tensor([[[1.0, 2.0]]])  # (B=1, T_q=1, 2)
key = torch.tensor([[[0.0, 0.0], [ln3, ln3]]])  # (B=1, T_k=2, 2)
value = torch.tensor([[[4.0, 0.0], [0.0, 8.0]]])
# head 0 (feature 0): scores (0, ln 3) -> weights (1/4, 3/4) -> 1/4 * 4 + 3/4 * 0 = 1
# head 1 (feature 1): scores (0, 2 ln 3) -> weights (1/10, 9/10) -> 1/10 * 0 + 9/10 * 8 = 7.2
# merged (1, 7.2), then W_O swaps: (7.2, 1)
mha_example(
    multi_head_attention,
    mha,
    query,
    key,
    value,
    None,
    output=torch.tensor([[[7.2, 1.0]]]),
    weights=torch.tensor([[[[0.25, 0.75]], [[0.1, 0.9]]]]),
    what="of the hand-worked example",
)
multi_head_attention_properties(multi_head_attention)  # shapes, rows sum to 1, blocked keys 0, keys in any order
print("visible tests passed")
### BEGIN HIDDEN TESTS
check_multi_head_attention(multi_head_attention)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "notes"}
# Presenter notes (exercises). Exercise 1 (the prediction) is asked before the memory
# measurement of section 7; let the room vote first. Exercise 2 catches the classic
# attention bugs (softmax axis, missing or wrong scaling, mask after the softmax, inverted
# mask, blocked scores set to 0, an unstable softmax); the feedback names the one it sees.
# Exercise 3 is the mask notebook 05's GPT needs. Exercise 4 is the reshape-then-transpose
# order: reshaping straight to (B, h, T, D/h) has the right shape and the wrong numbers, the
# most common multi-head bug. Exercise 5 assembles section 6's module from those pieces and
# is graded against it on random weights; its usual slip is dividing by sqrt(d_model)
# instead of sqrt(d_head).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to read next
#
# - Bahdanau, Cho and Bengio, *Neural Machine Translation by Jointly Learning to Align and
#   Translate* (ICLR 2015): attention in an RNN encoder–decoder, and the alignment heatmaps.
# - Luong, Pham and Manning, *Effective Approaches to Attention-based Neural Machine
#   Translation* (EMNLP 2015): the dot-product attention on top of the decoder used in section 1.
# - Vaswani et al., *Attention Is All You Need* (NeurIPS 2017): scaled dot-product and
#   multi-head attention, the $\sqrt{d_k}$ argument (footnote 4) and the cost table (table 1).
# - Jay Alammar, *The Illustrated Transformer*: the "Thinking Machines" pictures.
# - Dao et al., *FlashAttention* (NeurIPS 2022): the fused kernel we measured against.
# - Next: **02 Positional encoding**, the fix for section 4's permutation equivariance.

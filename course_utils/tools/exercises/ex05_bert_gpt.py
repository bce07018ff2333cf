"""The graded checks of notebook 05 (BERT and GPT): references, known mistakes, hidden tests.

Each exercise has a `..._mistakes` catalogue (what a plausible wrong answer returns, keyed
by the message a student reads), the visible property checks where a test cell uses them,
and a `check_...` function that its hidden tests call. References are the course's own
modules (`course_utils.gpt`, `course_utils.bert_data`), so the notebook and the grader
cannot disagree.

The build exercise (a GPT block and the forward pass) is graded on small GPTs with random
weights of a useful size (GPT-2's init makes attention almost uniform, which would hide a
missing mask or scale). The student's function gets a *sealed* copy: calling the block,
its attention or the whole model raises a message, so the answer has to be written out.

    >>> model = random_gpt(0)
    >>> tuple(model(torch.zeros(1, 3, dtype=torch.long))[0].shape)
    (1, 3, 11)
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from course_utils.attention import merge_heads, scaled_dot_product_attention, split_heads
from course_utils.bert_data import mlm_rule
from course_utils.gpt import GPT, Block, CausalSelfAttention, GPTConfig, causal_lm_loss
from course_utils.sampling import sample_next
from course_utils.tools.grading import (
    GradingError,
    call,
    expect,
    expect_close,
    expect_dtype,
    expect_equal,
    expect_shape,
)

__all__ = [
    "random_gpt",
    "gpt_block_mistakes",
    "gpt_logits_mistakes",
    "gpt_properties",
    "check_gpt",
    "lm_loss_mistakes",
    "check_lm_loss",
    "temperature_mistakes",
    "temperature_properties",
    "greedy_mistakes",
    "greedy_draws",
    "check_temperature",
    "mlm_mask_mistakes",
    "check_bert_mask",
]


# ---------------------------------------------------------------------------------------------
# build exercise: a GPT block, and the forward pass from ids to tied logits
# ---------------------------------------------------------------------------------------------
def random_gpt(seed: int, **sizes) -> GPT:
    """A small GPT (V = 11, max_len = 8, 2 layers, 3 heads of 4 features) with random weights, in eval mode.

    Weights are N(0, 0.3^2) and LayerNorm gains 1 + N(0, 0.2^2), so attention is far from
    uniform and every mistake moves the output. The global random state is left as it was.
    """
    config = GPTConfig(**{"vocab_size": 11, "max_len": 8, "n_layers": 2, "n_heads": 3, "d_model": 12, **sizes})
    with torch.random.fork_rng(devices=[]):
        model = GPT(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_gain = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
            p.copy_(1 + 0.2 * noise if is_gain else 0.3 * noise)
    return model


def _refuse(what: str, instead: str):
    def forward(*args, **kwargs):
        raise GradingError(f"your answer calls {what}, which is not allowed here: {instead}.")

    return forward


def _sealed(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of a GPT or a Block whose whole-model, block and attention forwards (and lm_head) refuse to run."""
    sealed = copy.deepcopy(module).requires_grad_(False)  # outputs without a graph: plain tensors to compare
    for name, m in sealed.named_modules():
        if isinstance(m, GPT):
            m.forward = _refuse("model(idx)", "run the embeddings, your gpt_block and the output layer yourself")
        elif isinstance(m, Block):
            m.forward = _refuse("block(x)", "write the two sub-layers out with the block's pieces")
        elif isinstance(m, CausalSelfAttention):
            m.forward = _refuse(
                "block.attn(x)", "compute q, k, v with block.attn.c_attn and the masked attention yourself"
            )
        elif name == "lm_head":
            m.forward = _refuse(
                "model.lm_head", "with tied weights the output layer is the token embedding, x @ wte.weight.T"
            )
    return sealed


def _block(x, block, *, pre_ln=True, mask="causal", scale="head", split=True, residual=True, ln_2=True, serial=True):
    """The block with one design choice changed per flag: the outputs of the known mistakes."""
    B, T, C = x.shape
    h = block.attn.config.n_heads if split else 1
    attn = block.attn

    def attention(y):
        q, k, v = (split_heads(t, h) for t in attn.c_attn(y).split(C, dim=-1))  # (B, h, T, C/h)
        if scale != "head":  # the reference divides by sqrt(C/h); undo and redo
            q = q * math.sqrt(C // h) / (math.sqrt(C) if scale == "model" else 1.0)
        allowed = {"causal": torch.ones(T, T).tril(), "none": torch.ones(T, T), "future": torch.ones(T, T).triu()}
        out, _ = scaled_dot_product_attention(q, k, v, allowed[mask].bool())
        return attn.c_proj(merge_heads(out))

    norm_2 = block.ln_2 if ln_2 else block.ln_1
    keep = 1.0 if residual else 0.0
    with torch.no_grad():
        if not pre_ln:  # post-LN: normalise the sum, as in the 2017 paper
            x = block.ln_1(x + attention(x))
            return block.ln_2(x + block.mlp(x))
        a = keep * x + attention(block.ln_1(x))
        return keep * a + block.mlp(norm_2(a if serial else x))  # serial=False: x + attn(..) + mlp(ln_2(x))


def gpt_block_mistakes(x: torch.Tensor, block: Block) -> dict:
    """{what the student did: the block's output with that mistake} for x (B, T, d_model)."""
    return {
        "post-LN (LayerNorm after each residual sum): GPT-2 normalises before each sub-layer, "
        "x + attn(ln_1(x)) then x + mlp(ln_2(x))": _block(x, block, pre_ln=False),
        "no causal mask: each position also attended to later positions": _block(x, block, mask="none"),
        "the mask is the wrong way round: query t may attend to keys 0..t (tril), not t..T-1": _block(
            x, block, mask="future"
        ),
        "no residual connections: each sub-layer's output is added to its input, x + ...": _block(
            x, block, residual=False
        ),
        "the scores are not divided by sqrt(d_head)": _block(x, block, scale="none"),
        "the scores are divided by sqrt(d_model) instead of sqrt(d_head), the size of one head": _block(
            x, block, scale="model"
        ),
        "one head of size d_model: split q, k and v into n_heads heads": _block(x, block, split=False),
        "ln_1 before both sub-layers: the MLP has its own LayerNorm, ln_2": _block(x, block, ln_2=False),
        "the MLP read the block's input: it works on x after the attention's residual sum": _block(
            x, block, serial=False
        ),
    }


def _logits(idx, model, *, positions=True, final_ln=True, every_block=True, probabilities=False):
    t = model.transformer
    with torch.no_grad():
        x = t.wte(idx) + (t.wpe(torch.arange(idx.shape[1])) if positions else 0)  # (B, T, C)
        for block in t.h if every_block else [t.h[0]] * len(t.h):
            x = block(x)
        logits = (t.ln_f(x) if final_ln else x) @ t.wte.weight.T  # (B, T, V), tied
        return logits.softmax(-1) if probabilities else logits


def gpt_logits_mistakes(idx: torch.Tensor, model: GPT) -> dict:
    """{what the student did: the logits with that mistake} for token ids (B, T); the blocks are the course's."""
    return {
        "no position embeddings: add model.transformer.wpe(positions 0..T-1) to the token embeddings": _logits(
            idx, model, positions=False
        ),
        "no final LayerNorm: apply model.transformer.ln_f before the output layer": _logits(idx, model, final_ln=False),
        "every layer used the first block: loop over model.transformer.h": _logits(idx, model, every_block=False),
        "probabilities instead of logits: leave out the softmax": _logits(idx, model, probabilities=True),
    }


def gpt_properties(gpt_block, gpt_logits) -> None:
    """Visible checks: shapes; with zero output projections a block is the identity; no position sees a later one."""
    model = random_gpt(1)
    block = model.transformer.h[0]
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1))
    out = call(gpt_block, x, _sealed(block))
    expect_shape(out, (2, 5, 12), "gpt_block(x, block) for x of shape (2, 5, 12)")
    quiet = copy.deepcopy(block)
    with torch.no_grad():
        for layer in (quiet.attn.c_proj, quiet.mlp.c_proj):
            layer.weight.zero_()
            layer.bias.zero_()
    expect_close(
        call(gpt_block, x, _sealed(quiet)),
        x,
        "gpt_block on a block whose output projections attn.c_proj and mlp.c_proj are zero (it must return x: "
        "each sub-layer adds nothing to the residual stream)",
        mistakes=gpt_block_mistakes(x, quiet),
    )
    later = x.clone()
    later[:, 3:] += torch.randn(2, 2, 12, generator=torch.Generator().manual_seed(2))  # not a constant: LN removes it
    expect(
        torch.allclose(call(gpt_block, later, _sealed(block))[:, :3], out[:, :3], atol=1e-5),
        "gpt_block is not causal: changing the inputs at positions 3 and later changed its outputs at positions "
        "0 to 2. Mask the scores before the softmax so that query t sees keys 0..t only.",
    )
    idx = torch.tensor([[1, 4, 1, 5, 9], [2, 6, 5, 3, 5]])
    logits = call(gpt_logits, idx, _sealed(model))
    expect_shape(logits, (2, 5, 11), "gpt_logits(idx, model) for idx of shape (2, 5) and 11 tokens")
    expect(logits.is_floating_point(), f"gpt_logits should return float logits, got dtype {logits.dtype}.")
    other = idx.clone()
    other[:, 3:] = 0
    expect(
        torch.allclose(call(gpt_logits, other, _sealed(model))[:, :3], logits[:, :3], atol=1e-5),
        "gpt_logits is not causal: changing the tokens at positions 3 and later changed the logits at positions 0 to 2.",
    )


def check_gpt(gpt_block, gpt_logits) -> None:
    """Hidden checks: both functions equal the course's GPT on random weights, several sizes and shapes."""
    g = torch.Generator().manual_seed(21)
    blocks = [
        (3, {}, (3, 7), "a batch of 3 sequences of 7 positions, 3 heads"),
        (4, {"d_model": 8, "n_heads": 1}, (2, 5), "a block with a single head"),
        (5, {"d_model": 16, "n_heads": 4, "bias": False}, (1, 8), "one sequence of max_len positions, 4 heads"),
        (6, {}, (4, 1), "sequences of a single position"),
    ]
    for seed, sizes, (B, T), on in blocks:
        block = random_gpt(seed, **sizes).transformer.h[0]
        x = torch.randn(B, T, block.attn.config.d_model, generator=g)
        with torch.no_grad():
            right = block(x)
        out = call(gpt_block, x, _sealed(block))
        expect_close(
            out, right, "gpt_block(x, block)", atol=1e-4, rtol=1e-4, mistakes=gpt_block_mistakes(x, block), on=on
        )
    models = [
        (7, {}, (3, 6), "a batch of 3 sequences of 6 tokens, 2 layers"),
        (8, {"d_model": 8, "n_heads": 2, "n_layers": 3, "vocab_size": 5}, (2, 8), "3 layers and max_len tokens"),
        (9, {"n_layers": 1, "bias": False}, (1, 1), "one sequence of one token"),
    ]
    for seed, sizes, (B, T), on in models:
        model = random_gpt(seed, **sizes)
        idx = torch.randint(model.config.vocab_size, (B, T), generator=g)
        with torch.no_grad():
            right = model(idx)[0]
        out = call(gpt_logits, idx, _sealed(model))
        expect_close(
            out, right, "gpt_logits(idx, model)", atol=1e-4, rtol=1e-4, mistakes=gpt_logits_mistakes(idx, model), on=on
        )


# ---------------------------------------------------------------------------------------------
# the causal language-model loss
# ---------------------------------------------------------------------------------------------
def _ce(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def lm_loss_mistakes(logits: torch.Tensor, ids: torch.Tensor) -> dict:
    """{what the student did: the loss it gives} for logits (B, T, V) and ids (B, T)."""
    return {
        "the targets are not shifted: position t must be scored against token t + 1, not token t": _ce(logits, ids),
        "shifted the wrong way: drop the LAST position of the logits and the FIRST token of ids": _ce(
            logits[:, 1:], ids[:, :-1]
        ),
        "a sum instead of a mean over the predictions": _ce(logits[:, :-1], ids[:, 1:]) * ids[:, 1:].numel(),
    }


def check_lm_loss(lm_loss) -> None:
    """Hidden checks: random batches of several shapes, one prediction per row, rows of very different scales."""
    g = torch.Generator().manual_seed(5)
    cases = [
        ((3, 9, 11), torch.tensor(3.0), "a batch of 3 sequences of 9 tokens over 11 symbols"),
        ((1, 2, 7), torch.tensor(1.0), "one sequence of 2 tokens (a single prediction)"),
        ((4, 3, 2), torch.tensor(1.0), "a batch of 4 sequences over 2 symbols"),
        ((2, 6, 5), torch.tensor([1.0, 300.0]).view(2, 1, 1), "rows of very different scales (logits in the hundreds)"),
    ]
    for shape, scale, on in cases:
        logits = torch.randn(*shape, generator=g) * scale
        ids = torch.randint(shape[-1], shape[:2], generator=g)
        out = call(lm_loss, logits, ids)
        expect(
            isinstance(out, torch.Tensor) and out.dim() == 0,
            "lm_loss should return a scalar tensor (the mean over predictions).",
        )
        expect_close(out, causal_lm_loss(logits, ids), "lm_loss", mistakes=lm_loss_mistakes(logits, ids), on=on)


# ---------------------------------------------------------------------------------------------
# temperature sampling
# ---------------------------------------------------------------------------------------------
def temperature_mistakes(logits: torch.Tensor, temperature: float) -> dict:
    """{what the student did: the probabilities it gives} for logits (..., V)."""
    p = torch.softmax(logits, -1)
    return {
        "temperature multiplied instead of divided: use softmax(logits / T)": torch.softmax(logits * temperature, -1),
        "temperature applied after the softmax: divide the logits, not the probabilities": p / temperature,
        "no softmax: return probabilities, not scaled logits": logits / temperature,
        "softmax over the wrong dimension: use dim=-1": torch.softmax(logits / temperature, 0),
    }


def temperature_properties(temperature_probs) -> None:
    """Visible checks: same shape as the logits, entries in [0, 1], every distribution sums to one."""
    z = torch.tensor([[[3.0, -1.0, 0.5], [0.0, 0.0, 0.0]], [[-2.0, 4.0, 1.0], [1.0, 2.0, 3.0]]])  # (2, 2, 3)
    for T in (0.3, 1.0, 3.0):
        p = call(temperature_probs, z, T)
        expect_shape(p, (2, 2, 3), f"temperature_probs on (2, 2, 3) logits at T = {T}")
        expect(bool(((p >= 0) & (p <= 1)).all()), f"temperature_probs at T = {T}: probabilities lie in [0, 1].")
        expect_close(p.sum(-1), torch.ones(2, 2), f"temperature_probs at T = {T}: each distribution's sum")


def greedy_mistakes(logits: torch.Tensor) -> dict:
    """{what the student did: what greedy decoding (T = 0) returns with that mistake} for (B, V) logits."""
    return {"the largest logit instead of its index: use argmax": logits.max(-1, keepdim=True).values}


def greedy_draws(sample_with_temperature, logits: torch.Tensor) -> torch.Tensor:
    """sample_with_temperature(logits, 0), with a hint when it crashes (dividing by T = 0)."""
    try:
        return call(sample_with_temperature, logits, 0, forbidden=[sample_next])
    except GradingError as e:
        if "raised" not in str(e):
            raise
        raise GradingError(
            "sample_with_temperature(logits, 0) crashed: temperature 0 means greedy, "
            "return the argmax instead of dividing by 0."
        ) from None


def check_temperature(temperature_probs, sample_with_temperature) -> None:
    """Hidden checks: probabilities on new shapes and scales, seeded draws, greedy on a new batch, the draws' law."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (torch.randn(3, 7, generator=g) * 2, 0.7, "a batch of 3 rows over 7 tokens"),
        (torch.randn(2, 3, 5, generator=g), 1.9, "logits of shape (2, 3, 5), a softmax over the last dimension"),
        (torch.randn(1, 1, generator=g), 0.4, "a single token"),
        (
            torch.randn(4, 6, generator=g) * torch.tensor([[1.0], [10.0], [100.0], [1000.0]]),
            0.5,
            "rows of very different scales (logits up to a few thousand)",
        ),
    ]
    for z, T, on in cases:
        p = call(temperature_probs, z, T)
        expect_close(p, torch.softmax(z / T, -1), "temperature_probs", mistakes=temperature_mistakes(z, T), on=on)
    z = cases[0][0]
    draws = call(sample_with_temperature, z, 1.5, torch.Generator().manual_seed(11), forbidden=[sample_next])
    expect_dtype(draws, torch.long, "sample_with_temperature's token ids")
    expect_equal(
        draws,
        torch.multinomial(torch.softmax(z / 1.5, -1), 1, generator=torch.Generator().manual_seed(11)),
        "sample_with_temperature with a seeded generator",
        mistakes={
            "temperature multiplied instead of divided": torch.multinomial(
                torch.softmax(z * 1.5, -1), 1, generator=torch.Generator().manual_seed(11)
            )
        },
        on="a batch of 3 rows over 7 tokens",
    )
    z = torch.randn(5, 9, generator=g)
    greedy = greedy_draws(sample_with_temperature, z)
    expect_equal(
        greedy,
        z.argmax(-1, keepdim=True),
        "sample_with_temperature(logits, 0)",
        mistakes=greedy_mistakes(z),
        on="a batch of 5 rows over 9 tokens",
    )
    expect_dtype(greedy, torch.long, "sample_with_temperature(logits, 0)'s token ids")
    big = torch.tensor([[0.0, 1.0]]).expand(4000, 2)
    share = call(sample_with_temperature, big, 0.5, torch.Generator().manual_seed(1), forbidden=[sample_next])
    expect(
        abs(share.float().mean().item() - torch.softmax(torch.tensor([0.0, 2.0]), 0)[1].item()) < 0.03,
        "at T = 0.5 the draws do not follow softmax(logits / T): check that you sample from temperature_probs.",
    )


# ---------------------------------------------------------------------------------------------
# BERT's masking rule
# ---------------------------------------------------------------------------------------------
def _rule(ids, select_u, action_u, random_ids, mask_id, chosen, pool, strict=True):
    """inputs, labels: chosen positions get labels; the 80/10/10 split acts on `pool`."""
    lt = torch.lt if strict else torch.le
    inputs = ids.clone()
    inputs[pool & lt(action_u, 0.8)] = mask_id
    swap = pool & ~lt(action_u, 0.8) & lt(action_u, 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, torch.where(chosen, ids, torch.full_like(ids, -100))


def mlm_mask_mistakes(ids, select_u, action_u, random_ids, special, mask_id) -> tuple[dict, dict]:
    """({mistake: inputs it gives}, {mistake: labels it gives}) for BERT's 15 % rule, all tensors (B, T)."""
    chosen = (select_u < 0.15) & ~special
    right = _rule(ids, select_u, action_u, random_ids, mask_id, chosen, chosen)
    anything = select_u < 0.15
    unchanged_masked = torch.where(chosen & (action_u >= 0.9), torch.full_like(ids, mask_id), right[0])
    wrong = {
        "the 80/10/10 split was applied to every token instead of only the chosen 15 %": _rule(
            ids, select_u, action_u, random_ids, mask_id, chosen, ~special
        ),
        "[CLS]/[SEP] (special tokens) were masked: a special token must never be chosen": _rule(
            ids, select_u, action_u, random_ids, mask_id, anything, anything
        ),
        "labels are set at every position: use -100 where a token was not chosen": (right[0], ids),
        "the unchanged 10 % were masked too: action_u >= 0.9 keeps the token": (unchanged_masked, right[1]),
        "a threshold compared with <= : [MASK] when action_u < 0.8, a random token when 0.8 <= action_u < 0.9": (
            _rule(ids, select_u, action_u, random_ids, mask_id, chosen, chosen, strict=False)[0],
            right[1],
        ),
    }
    return {m: w[0] for m, w in wrong.items()}, {m: w[1] for m, w in wrong.items()}


def _check_mask(bert_mask, ids, select_u, action_u, random_ids, special, mask_id, on):
    out = call(bert_mask, ids, select_u, action_u, random_ids, special, mask_id)
    expect(isinstance(out, tuple) and len(out) == 2, "bert_mask should return a pair (inputs, labels).")
    right = mlm_rule(ids, select_u, action_u, random_ids, special, mask_id)
    wrong = mlm_mask_mistakes(ids, select_u, action_u, random_ids, special, mask_id)
    for i, part in enumerate(("inputs", "labels")):
        expect_equal(out[i], right[i], f"bert_mask's {part} tensor", mistakes=wrong[i], on=on)
        expect_dtype(out[i], torch.long, f"bert_mask's {part} tensor (token ids)")
    expect(torch.equal(out[0][special], ids[special]), "special tokens must stay exactly as they are.")


def check_bert_mask(bert_mask) -> None:
    """Hidden checks: a random batch, draws exactly on the thresholds, one-token and odd shapes, id dtypes."""
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(5, 90, (6, 40), generator=g)
    special = torch.zeros(6, 40, dtype=torch.bool)
    special[:, 0] = special[:, -1] = special[:, 19] = True
    ids[special] = 2
    u1, u2 = torch.rand(6, 40, generator=g) * 0.4, torch.rand(6, 40, generator=g)
    rnd = torch.randint(5, 90, (6, 40), generator=g)
    _check_mask(bert_mask, ids, u1, u2, rnd, special, 4, "a random batch of 6 sequences of 40 tokens")
    u1 = torch.tensor([[0.1, 0.1, 0.1, 0.15, 0.1, 0.1, 0.1]])  # exactly on the thresholds
    u2 = torch.tensor([[0.8, 0.9, 0.5, 0.1, 0.85, 0.95, 0.79]])
    ids, rnd = torch.arange(10, 17).view(1, 7), torch.arange(30, 37).view(1, 7)
    special = torch.zeros(1, 7, dtype=torch.bool)
    _check_mask(bert_mask, ids, u1, u2, rnd, special, 7, "draws exactly on the thresholds 0.15, 0.8 and 0.9")
    one = torch.tensor([[12]])
    no_special = torch.zeros(1, 1, dtype=torch.bool)
    _check_mask(bert_mask, one, torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([[40]]), no_special, 5, "one token")
    ids = torch.randint(5, 60, (3, 5), generator=g)
    u1, u2 = torch.rand(3, 5, generator=g) * 0.3, torch.rand(3, 5, generator=g)
    special = torch.zeros(3, 5, dtype=torch.bool)
    special[:, 0] = True
    _check_mask(bert_mask, ids, u1, u2, torch.randint(5, 60, (3, 5), generator=g), special, 9, "a (3, 5) batch")

"""The graded checks of notebook 04 (the translator): a decoder layer, the decoder's mask, the
label-smoothed loss and one beam-search step.

Each exercise has a property check (`*_properties(fn)`, which the visible test calls on the
student's function: shapes, dtypes, invariances, a case worked by hand) and a full check
(`check_*(fn)`, which the hidden test calls: the course's own module gives the right answer on
inputs the student never saw, and every known mistake is computed on the same input so the
message can name it). Messages describe an input ("a batch of 3 sentences of different
lengths"), never print it.

>>> def decoder_mask(tgt, pad_id):
...     return causal_mask(tgt.shape[1])[None] & (tgt != pad_id)[:, None, :]
>>> check_decoder_mask(decoder_mask)
>>> check_decoder_mask(lambda tgt, pad_id: ~decoder_mask(tgt, pad_id))
Traceback (most recent call last):
...
course_utils.tools.grading.GradingError: decoder_mask is not right (on 3 sentences of 5, 3 and 1 tokens). It looks like: the polarity is inverted: ...
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from course_utils.attention import causal_mask, padding_mask
from course_utils.decoding import beam_step
from course_utils.tools.grading import call, expect, expect_close, forbid
from course_utils.tools.grading import expect_dtype, expect_equal, expect_shape
from course_utils.train import label_smoothed_cross_entropy
from course_utils.transformer import DecoderLayer, TransformerConfig, decoder_self_mask, residual


# ----------------------------------------------------------------------------- a decoder layer
def random_decoder_layer(d_model=8, n_heads=2, d_ff=16, norm_first=True, seed=0) -> DecoderLayer:
    """A course DecoderLayer (dropout 0, eval mode) with every parameter random, LayerNorms included.

    Random gains and biases make norm1, norm2 and norm3 differ, so using the wrong one shows.
    """
    config = TransformerConfig(d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=0.0, norm_first=norm_first)
    layer = DecoderLayer(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            is_gain = name.startswith("norm") and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if is_gain else 0.4) + (1.0 if is_gain else 0.0))
    return layer


def _decoder_inputs(layer, tgt_lengths, src_lengths, T, S, seed):
    """x (B, T, d), memory (B, S, d), self_mask (B, T, T) causal & real keys, cross_mask (B, 1, S)."""
    g = torch.Generator().manual_seed(seed)
    d = layer.self_attn.d_model
    x = torch.randn(len(tgt_lengths), T, d, generator=g)
    memory = torch.randn(len(src_lengths), S, d, generator=g)
    self_mask = causal_mask(T)[None] & padding_mask(tgt_lengths, T)[:, None, :]
    return x, memory, self_mask, padding_mask(src_lengths, S)[:, None, :]


def _variant(layer, x, memory, self_mask, cross_mask, *, pre=None, from_h=False, norm_memory=False,
             cross_first=False, one_norm=False, no_residual=None, no_dropout=False):  # fmt: skip
    """The layer's forward with one known mistake switched on (all off: DecoderLayer.forward)."""
    pre = layer.norm_first if pre is None else pre
    norms = {"self": layer.norm1, "cross": layer.norm1 if one_norm else layer.norm2}
    norms["ff"] = layer.norm1 if one_norm else layer.norm3
    kv = lambda n: n(memory) if norm_memory else memory
    sublayers = {
        "self": lambda h, n: layer.self_attn(h, h, h, self_mask)[0],
        "cross": lambda h, n: layer.cross_attn(h, kv(n), kv(n), cross_mask)[0],
        "ff": lambda h, n: layer.ff(h),
    }
    for name in ("cross", "self", "ff") if cross_first else ("self", "cross", "ff"):
        norm = norms[name]
        h = norm(x) if pre else x
        y = sublayers[name](h, norm) if no_dropout else layer.dropout(sublayers[name](h, norm))
        x = y if name == no_residual else (h if from_h else x) + y
        x = x if pre else norm(x)
    return x


def _layer_mistakes(layer, x, memory, self_mask, cross_mask) -> dict:
    """{what the student did: the output x it gives} on this input."""
    args = (layer, x, memory, self_mask, cross_mask)
    if layer.norm_first:
        order = (
            "the LayerNorms come after the residual sums (post-LN), but this layer is pre-LN "
            "(layer.norm_first is True): x = x + Sublayer(LN(x))"
        )
    else:
        order = (
            "the LayerNorms are applied to the sublayers' inputs (pre-LN), but this layer is post-LN "
            "(layer.norm_first is False): x = LN(x + Sublayer(x))"
        )
    m = {
        order: _variant(*args, pre=not layer.norm_first),
        "the self-attention ignores self_mask: pass it, so no position sees later or padded positions": _variant(
            layer, x, memory, None, cross_mask
        ),
        "the cross-attention ignores cross_mask: pass it, so no position attends to the source's padding": _variant(
            layer, x, memory, self_mask, None
        ),
        "the cross-attention comes before the masked self-attention: the order is self-attention, "
        "cross-attention, feed-forward": _variant(*args, cross_first=True),
        "one LayerNorm (norm1) serves every sublayer: each has its own, norm1, norm2 and norm3": _variant(
            *args, one_norm=True
        ),
    }
    for name, what in (("self", "self-attention"), ("cross", "cross-attention"), ("ff", "feed-forward network")):
        m[f"the residual connection around the {what} is missing: add the sublayer's output to x"] = _variant(
            *args, no_residual=name
        )
    if layer.norm_first:
        m["the residual adds the normalised h = LN(x) instead of x: in pre-LN, x = x + Sublayer(LN(x))"] = _variant(
            *args, from_h=True
        )
        m[
            "the encoder's output was normalised too: only the decoder's x goes through norm2; "
            "keys and values come from memory as it is"
        ] = _variant(*args, norm_memory=True)
    return m


WHOLE_LAYER = (
    "it runs the whole layer (layer(...)); write the three sublayers from layer.self_attn, layer.cross_attn, "
    "layer.ff and the norms"
)


def _run_layer(fn, layer, x, memory, self_mask, cross_mask, seed=0):
    """The student's (x, w_self, w_cross), with the whole layer and `residual` forbidden; seeded for dropout."""
    with forbid(fn, [DecoderLayer.forward], reason=WHOLE_LAYER), torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)  # the same dropout masks as the reference run with this seed
        out = call(fn, layer, x, memory, self_mask, cross_mask, what="decoder_layer_forward", forbidden=[residual])
    expect(
        isinstance(out, tuple) and len(out) == 3 and all(isinstance(t, torch.Tensor) for t in out),
        "decoder_layer_forward should return three tensors: (x, self-attention weights, cross-attention weights).",
    )
    return out


def decoder_layer_properties(fn) -> None:
    """Visible checks of decoder_layer_forward(layer, x, memory, self_mask, cross_mask) -> (x, w_self, w_cross).

    Shapes; with every attention and feed-forward weight zero (worked by hand), a pre-LN layer is
    the identity (x + 0 + 0 + 0) and a post-LN layer returns normalised tokens (mean 0, std 1);
    no output depends on a later target position or on the source's padding.
    """
    for norm_first in (True, False):
        kind = "pre-LN" if norm_first else "post-LN"
        layer = random_decoder_layer(8, 2, 16, norm_first, seed=1)
        x, memory, self_mask, cross_mask = _decoder_inputs(layer, [3, 2], [4, 2], 4, 5, seed=2)
        y, w_self, w_cross = _run_layer(fn, layer, x, memory, self_mask, cross_mask)
        expect_shape(y, (2, 4, 8), f"the output x of a {kind} layer (2 sentences, 4 target and 5 source positions)")
        expect_shape(w_self, (2, 2, 4, 4), "the self-attention weights (2 sentences, 2 heads, 4 target positions)")
        expect_shape(w_cross, (2, 2, 4, 5), "the cross-attention weights (2 sentences, 2 heads, 4 to 5 positions)")
        expect(
            not (w_self * ~self_mask[:, None]).any() and not (w_cross * ~cross_mask[:, None]).any(),
            "a masked position got attention weight: give self_mask to the self-attention "
            "and cross_mask to the cross-attention.",
        )
        later, padded = x.clone(), memory.clone()
        later[:, 3] += 1.0  # the last target position changes
        padded[1, 2:] += 1.0  # the second sentence's source padding changes
        y2 = _run_layer(fn, layer, later, padded, self_mask, cross_mask)[0]
        expect(
            torch.allclose(y2[:, :3], y[:, :3], atol=1e-5),
            f"{kind}: an output changed when only a later target position or the source's padding changed: "
            "pass self_mask to the self-attention and cross_mask to the cross-attention.",
        )
        with torch.no_grad():
            for part in (layer.self_attn, layer.cross_attn, layer.ff):
                for p in part.parameters():
                    p.zero_()
            for norm in (layer.norm1, layer.norm2, layer.norm3):
                norm.weight.fill_(1.0), norm.bias.zero_()
        y = _run_layer(fn, layer, x, memory, self_mask, cross_mask)[0]
        if norm_first:
            expect(
                torch.allclose(y, x, atol=1e-5),
                "with zero weights in every sublayer a pre-LN layer is the identity (x + 0 + 0 + 0), but yours "
                "changed x: normalise only the sublayer's input, and add its output to x itself.",
            )
        else:
            expect(
                torch.allclose(y.mean(-1), torch.zeros(2, 4), atol=1e-3)
                and torch.allclose(y.std(-1, unbiased=False), torch.ones(2, 4), atol=1e-3),
                "with zero weights in every sublayer a post-LN layer returns normalised tokens (mean 0, std 1), "
                "but yours does not: end each sublayer with its LayerNorm, x = LN(x + Sublayer(x)).",
            )


def check_decoder_layer(fn) -> None:
    """Hidden checks: equal to course_utils.transformer.DecoderLayer on random weights, both orders, several shapes."""
    cases = [  # (d_model, n_heads, d_ff, target lengths, source lengths, T, S, what kind of input)
        (8, 2, 16, [5, 3, 1], [7, 2, 4], 6, 7, "a batch of 3 sentences of different lengths"),
        (12, 3, 20, [1], [1], 1, 1, "one sentence of one token and a source of one token"),
        (6, 1, 10, [2, 6], [3, 3], 6, 4, "2 sentences, one head, more target than source positions"),
    ]
    for i, (d, h, d_ff, tgt_lengths, src_lengths, T, S, on) in enumerate(cases):
        for norm_first in (True, False):
            layer = random_decoder_layer(d, h, d_ff, norm_first, seed=10 + i)
            args = _decoder_inputs(layer, tgt_lengths, src_lengths, T, S, seed=20 + i)
            kind = f"a {'pre' if norm_first else 'post'}-LN layer, {on}"
            with torch.no_grad():
                right = layer(*args)
            got = _run_layer(fn, layer, *args)
            expect_close(got[0], right[0], "the output x", atol=1e-5, rtol=1e-4, on=kind,
                         mistakes=_layer_mistakes(layer, *args))  # fmt: skip
            expect_close(got[1], right[1], "w_self (the self-attention weights)", atol=1e-5, rtol=1e-4, on=kind)
            expect_close(got[2], right[2], "w_cross (the cross-attention weights)", atol=1e-5, rtol=1e-4, on=kind)
    layer = random_decoder_layer(8, 2, 16, True, seed=30).train()
    layer.dropout = nn.Dropout(0.3)  # the only random part: attention and FFN dropout stay 0
    args = _decoder_inputs(layer, [4, 2], [3, 5], 4, 5, seed=31)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(5)
        right = layer(*args)[0]
    mistakes = {"no dropout on the sublayers' outputs: x = x + layer.dropout(Sublayer(...))": _variant(
        layer, *args, no_dropout=True)}  # fmt: skip
    expect_close(_run_layer(fn, layer, *args, seed=5)[0], right, "the output x", atol=1e-5, rtol=1e-4,
                 on="a pre-LN layer in training mode, with dropout", mistakes=mistakes)  # fmt: skip


# ----------------------------------------------------------------------------- the decoder's mask
def decoder_mask_mistakes(tgt: torch.Tensor, pad_id: int) -> dict:
    """{what the student did: the mask it gives} for (B, T) ids `tgt`."""
    B, T = tgt.shape
    tri, right = causal_mask(T)[None], decoder_self_mask(tgt, pad_id)  # (1, T, T), (B, T, T)
    keys, queries = (tgt != pad_id)[:, None, :], (tgt != pad_id)[:, :, None]  # (B, 1, T), (B, T, 1)
    return {
        "the polarity is inverted: True must mean 'may attend' (as in scaled_dot_product_attention), "
        "not 'blocked'": ~right,
        "the padding mask is on the wrong axis: padding blocks keys (the last axis, real[:, None, :]), not queries": tri
        & queries,
        "the padding mask is missing: combine the causal mask with 'key is not padding' using &": tri.expand(B, T, T),
        "the causal mask is missing: query i may only see keys j <= i (lower triangle, tril)": keys.expand(B, T, T),
        "the triangle is the wrong way round: keys j <= i is the lower triangle (tril), not triu": tri.mT & keys,
        "padding and causal masks were combined with OR: both conditions must hold, use &": tri | keys,
        "every sentence got the first sentence's padding: compare each sentence's own ids, tgt != pad_id": (
            tri & keys[:1]
        ).expand(B, T, T),
        "padding was found with id 0 instead of the pad_id argument: compare with tgt != pad_id": tri
        & (tgt != 0)[:, None, :],
    }


def decoder_mask_properties(fn) -> None:
    """Visible checks of decoder_mask(tgt, pad_id): bool (B, T, T), nothing above the diagonal, no padded key, self seen."""
    tgt = torch.tensor([[4, 5, 6, 7, 1, 1], [8, 9, 1, 1, 1, 1], [3, 3, 3, 3, 3, 3]])  # pad_id 1: 4, 2 and 6 real tokens
    got = call(fn, tgt, 1, what="decoder_mask", forbidden=[decoder_self_mask])
    expect_shape(got, (3, 6, 6), "decoder_mask(tgt, pad_id) for tgt of shape (3, 6)")
    expect_dtype(got, torch.bool, "decoder_mask(tgt, pad_id)")
    expect(not got.triu(1).any(), "decoder_mask lets a query see a later key: keep only j <= i (the lower triangle).")
    expect(not got[0, :, 4:].any() and not got[1, :, 2:].any(), "decoder_mask lets a query see a padded key.")
    expect(got[2].diagonal().all() and got[0, :4, :4].diagonal().all(), "a real position must be able to see itself.")


def check_decoder_mask(fn) -> None:
    """Hidden checks: other pad ids, a real token 0, batches of 1 and 4, one token, int32 ids."""
    g = torch.Generator().manual_seed(4)
    lengths = [7, 3, 5, 1]
    tall = torch.randint(3, 30, (4, 7), generator=g).masked_fill(~padding_mask(lengths, 7), 2)
    tall[1, 1] = 0  # a real token with id 0
    cases = [
        (torch.tensor([[3, 3, 3, 3, 3], [4, 0, 4, 1, 1], [2, 1, 1, 1, 1]]), 1, "3 sentences of 5, 3 and 1 tokens"),
        (tall, 2, "a batch of 4 sentences of different lengths"),
        (tall.int(), 2, "token ids stored as int32"),
        (torch.tensor([[5, 0, 9, 9, 9, 9]]), 9, "one sentence with padding"),
        (torch.tensor([[7]]), 0, "a single token"),
    ]
    for tgt, pad_id, on in cases:
        right = decoder_self_mask(tgt, pad_id)
        got = call(fn, tgt, pad_id, what="decoder_mask", forbidden=[decoder_self_mask])
        expect_dtype(got, torch.bool, f"decoder_mask on {on}")
        expect_equal(got, right, "decoder_mask", mistakes=decoder_mask_mistakes(tgt, pad_id), on=on)


# ----------------------------------------------------------------------------- the label-smoothed loss
def smoothed_loss_mistakes(logits: torch.Tensor, target: torch.Tensor, eps: float, pad_id: int) -> dict:
    """{what the student did: the loss it gives} for logits (N, V) and target (N,)."""
    N, V = logits.shape
    logp, real = logits.log_softmax(-1), target != pad_id
    onehot = F.one_hot(target, V).float()

    def loss(q, rows=real, lp=logp):
        return -(q * lp).sum(-1)[rows].mean()

    q = onehot * (1 - eps) + eps / (V - 1)
    q[:, pad_id] = 0.0
    q_pad_rows = torch.full((N, V), eps / (V - 1))  # the same q built in the other order: padded rows
    q_pad_rows[:, pad_id] = 0.0  # then put 1 - eps on pad
    q_pad_rows[torch.arange(N), target] += 1 - eps
    all_rows = torch.ones_like(real)
    return {
        "the smoothing mass is spread over the padding token too: give <pad> probability 0 "
        "and divide eps by V - 1": loss(onehot * (1 - eps) + eps / V),
        "the smoothing mass is spread over the padding token too (eps / (V - 1) on every class): "
        "set q[:, pad_id] = 0": loss(onehot * (1 - eps) + eps / (V - 1)),
        "padding positions are not ignored: average only over positions whose target is not pad_id": loss(q, all_rows),
        "padding positions are not ignored: average only over the positions whose target is not pad_id": loss(
            q_pad_rows, all_rows
        ),
        "there is no smoothing: the target distribution must be (1 - eps) on the answer plus eps spread out": loss(
            onehot
        ),
        "the loss is summed over positions instead of averaged over the real ones": -(q * logp).sum(-1)[real].sum(),
        "the right answer gets 1 - eps but no share of the uniform part: add eps / (V - 1) to every non-pad class, "
        "the answer included": loss(torch.where(onehot.bool(), 1 - eps, eps / (V - 2)) * (torch.arange(V) != pad_id)),
        "probabilities were used where log-probabilities belong: use logits.log_softmax(-1)": loss(q, lp=logp.exp()),
    }


def _loss(fn, *args):
    """The student's smoothed_loss(logits, target, eps, pad_id), the course's own loss forbidden."""
    return call(fn, *args, what="smoothed_loss", forbidden=[label_smoothed_cross_entropy])


def smoothed_loss_properties(fn) -> None:
    """Visible checks of smoothed_loss(logits, target, eps, pad_id): a float scalar, blind to padded rows and to
    a constant added to a row's logits; with eps = 0, plain cross-entropy."""
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(5, 6, generator=g), torch.tensor([2, 5, 0, 1, 0])  # pad_id 0: rows 2 and 4
    loss = _loss(fn, logits, target, 0.1, 0)
    expect_shape(loss, (), "smoothed_loss (one number: the mean over real positions)")
    expect(loss.is_floating_point(), "smoothed_loss should be a floating-point tensor.")
    moved = logits + torch.tensor([[1.0], [-3.0], [2.0], [0.5], [7.0]])
    expect_close(_loss(fn, moved, target, 0.1, 0), loss, "smoothed_loss after adding a constant to each row's logits")
    other = logits.clone()
    other[[2, 4]] = torch.randn(2, 6, generator=g) * 5
    expect_close(_loss(fn, other, target, 0.1, 0), loss, "smoothed_loss after changing only the padded rows' logits")
    plain = F.cross_entropy(logits, target, ignore_index=0)
    expect_close(_loss(fn, logits, target, 0.0, 0), plain, "smoothed_loss with eps = 0 (plain cross-entropy)")


def check_smoothed_loss(fn) -> None:
    """Hidden checks against course_utils.train.label_smoothed_cross_entropy: other sizes, pad ids, eps, scales."""
    g = torch.Generator().manual_seed(1)
    scaled = torch.randn(4, 8, generator=g) * torch.tensor([[1.0], [10.0], [100.0], [1000.0]])
    cases = [
        (torch.randn(9, 11, generator=g) * 3, torch.tensor([2, 5, 10, 7, 7, 1, 9, 9, 9]), 0.3, 9, "pad_id 9, eps 0.3"),
        (torch.randn(7, 5, generator=g), torch.tensor([3, 0, 4, 3, 1, 2, 3]), 0.1, 3, "padding between real positions"),
        (scaled, torch.tensor([1, 6, 7, 0]), 0.2, 5, "rows of very different scales"),
        (torch.randn(1, 4, generator=g), torch.tensor([2]), 0.25, 0, "a single position"),
    ]
    for logits, target, eps, pad_id, on in cases:
        right = label_smoothed_cross_entropy(logits, target, eps, ignore_index=pad_id)
        mistakes = smoothed_loss_mistakes(logits, target, eps, pad_id)
        expect_close(
            _loss(fn, logits, target, eps, pad_id), right, "smoothed_loss", mistakes=mistakes, on=on, rtol=1e-4
        )


# ----------------------------------------------------------------------------- one beam-search step
def beam_step_mistakes(scores, log_probs, k):
    """({mistake: new_scores}, {mistake: parent}, {mistake: token}) for one input."""
    K, V = log_probs.shape
    total = scores[:, None] + log_probs  # (K, V)
    flat = total.reshape(-1).topk(k).indices
    top = lambda t: t.reshape(-1).topk(k).values
    wrong_scores = {
        "the scores are not accumulated: add each beam's score to its log-probabilities before choosing": top(
            log_probs
        ),
        "the scores are not accumulated in log space: log-probabilities add (scores + log_probs), "
        "they do not multiply": top(scores[:, None] * log_probs),
        "probabilities were added to log-probabilities: stay in log space, scores + log_probs": top(
            scores[:, None] + log_probs.exp()
        ),
    }
    if k <= K:
        wrong_scores["only the best token of each beam was kept: choose the k best among all K x V candidates"] = top(
            total.max(dim=1).values
        )
    parents = {
        "the flat index was split the wrong way: parent = index // V (V = vocabulary size), token = index % V": flat
        % V,
        "parent was computed with K instead of V: the flat index runs over K rows of V tokens": flat // K,
    }
    tokens = {
        "the flat index was split the wrong way: token = index % V": flat // V,
        "token was computed with K instead of V: use index % V": flat % K,
    }
    return wrong_scores, parents, tokens


def _beam_outputs(fn, scores, log_probs, k, on):
    """The student's (new_scores, parent, token): three (k,) tensors, long indices; the course's beam_step forbidden."""
    out = call(fn, scores, log_probs, k, what="beam_step", forbidden=[beam_step])
    expect(
        isinstance(out, tuple) and len(out) == 3, "beam_step should return three tensors: (new_scores, parent, token)."
    )
    for t, what in zip(out, ("new_scores", "parent", "token")):
        expect_shape(t, (k,), f"{what} (on {on})")
    expect_dtype(out[1], torch.long, f"parent (indices into the beams, on {on})")
    expect_dtype(out[2], torch.long, f"token (token ids, on {on})")
    return out


def beam_step_properties(fn) -> None:
    """Visible checks of beam_step(scores, log_probs, k): k of each, long indices in range, best first, and each
    new score equal to its parent's score plus the log-probability of its token; no candidate twice."""
    g = torch.Generator().manual_seed(2)
    scores, log_probs = -torch.rand(3, generator=g) * 3, torch.randn(3, 7, generator=g).log_softmax(-1)
    new_scores, parent, token = _beam_outputs(fn, scores, log_probs, 4, "3 beams, 7 tokens, k = 4")
    expect(bool(((parent >= 0) & (parent < 3)).all()), "a parent is not the index of one of the K = 3 beams.")
    expect(bool(((token >= 0) & (token < 7)).all()), "a token is not an id of the vocabulary of V = 7.")
    expect(bool((new_scores[:-1] >= new_scores[1:]).all()), "new_scores are not sorted best first.")
    own = scores[parent] + log_probs[parent, token]  # what the returned parents and tokens say the scores are
    expect_close(new_scores, own, "new_scores, against scores[parent] + log_probs[parent, token],")
    expect(len(set(zip(parent.tolist(), token.tolist()))) == 4, "the same (parent, token) candidate was kept twice.")


def check_beam_step(fn) -> None:
    """Hidden checks against course_utils.decoding.beam_step: K != V, the first step (K = 1 < k), k = 1, all K V."""
    g = torch.Generator().manual_seed(3)
    cases = [
        (torch.randn(4, generator=g) - 2, torch.randn(4, 9, generator=g).log_softmax(-1), 4, "4 beams, 9 tokens"),
        (torch.tensor([0.0]), torch.randn(1, 6, generator=g).log_softmax(-1), 3, "the first step (1 beam)"),
        (torch.randn(5, generator=g), torch.randn(5, 3, generator=g).log_softmax(-1), 1, "k = 1 of 5 beams"),
        (torch.randn(2, generator=g), torch.randn(2, 3, generator=g).log_softmax(-1), 6, "k = every candidate"),
    ]
    for scores, log_probs, k, on in cases:
        new_scores, parent, token = _beam_outputs(fn, scores, log_probs, k, on)
        right = beam_step(scores, log_probs, k)
        wrong_scores, parents, tokens = beam_step_mistakes(scores, log_probs, k)
        expect_close(new_scores, right[0], "new_scores", mistakes=wrong_scores, on=on)
        expect_equal(parent, right[1], "parent", mistakes=parents, on=on)
        expect_equal(token, right[2], "token", mistakes=tokens, on=on)

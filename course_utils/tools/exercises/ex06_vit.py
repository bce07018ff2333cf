"""The graded checks of notebook 06 (the Vision Transformer): patchify, the class token, rollout, the forward pass.

Each exercise has a `..._properties(fn)` check that its visible test calls (shapes, dtypes,
invariances, no answer computed where the student can read it) and a `check_...(fn)` that
its hidden test calls: the course's own function as the reference (`course_utils.vit`,
`course_utils.vit_maps`), on inputs of several shapes, with the known mistakes named where
the input tells them apart. The visible tests also pass the `..._mistakes(...)` catalogues
to their hand-worked examples, so a mistake the example tells apart is named there already.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention, merge_heads, split_heads
from course_utils.tools.grading import call, expect, expect_close, expect_dtype, expect_shape
from course_utils.vit import MLP, EncoderBlock, PatchEmbedding, ViT, ViTConfig, patchify
from course_utils.vit_maps import attention_rollout

__all__ = [
    "patchify_mistakes",
    "patchify_properties",
    "check_patchify",
    "class_and_positions_mistakes",
    "class_and_positions_properties",
    "check_class_and_positions",
    "rollout_mistakes",
    "rollout_properties",
    "check_rollout",
    "functional_vit",
    "vit_logits_mistakes",
    "random_vit",
    "hand_worked_vit",
    "vit_logits_properties",
    "check_vit_logits",
]


# ---------------------------------------------------------------------------------------------
# patchify
# ---------------------------------------------------------------------------------------------
def patchify_mistakes(x: torch.Tensor, P: int) -> dict:
    """The usual wrong patch orders, each as the output it produces on x (B, C, H, W)."""
    B, C, H, W = x.shape
    six = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, gh, P, gw, P)
    flat = lambda t: t.reshape(B, (H // P) * (W // P), C * P * P)  # noqa: E731
    return {
        "the patches come column by column: put the grid-row axis before the grid-column axis "
        "(permute(0, 2, 4, ...), not permute(0, 4, 2, ...))": flat(six.permute(0, 4, 2, 1, 3, 5)),
        "a reshape without a permute cuts strips of rows, not squares: permute the grid axes in front first": flat(x),
        "the pixels inside a patch are transposed: keep (row, column) order within each patch": flat(
            six.permute(0, 2, 4, 1, 5, 3)
        ),
        "the channels come last inside each patch: flatten a patch as (channel, row, column)": flat(
            six.permute(0, 2, 4, 3, 5, 1)
        ),
    }


def patchify_properties(fn) -> None:
    """Visible checks: shape and dtype on a non-square 3-channel batch, and every pixel kept exactly once."""
    x = torch.randn(2, 3, 6, 4, generator=torch.Generator().manual_seed(60))
    out = call(fn, x, 2, what="image_to_patches")
    expect_shape(out, (2, 6, 12), "image_to_patches on a (2, 3, 6, 4) batch with patch size 2")
    expect_dtype(out, x.dtype, "image_to_patches' output")
    expect(
        torch.equal(out.reshape(2, -1).sort(-1).values, x.reshape(2, -1).sort(-1).values),
        "image_to_patches must keep every pixel of each image exactly once (only reorder them).",
    )


def check_patchify(fn) -> None:
    """Hidden checks: non-square, multi-channel, batch 1, patch size 1 and whole-image patches, uint8 images."""
    g = torch.Generator().manual_seed(6)
    cases = (
        ((3, 3, 12, 8), 4, "a batch of 3 non-square colour images"),
        ((1, 1, 28, 28), 7, "one grey 28x28 image"),
        ((2, 2, 6, 9), 3, "a batch of 2 two-channel 6x9 images"),
        ((2, 3, 5, 5), 5, "images that are a single patch"),
        ((2, 1, 3, 4), 1, "patches of one pixel"),
    )
    for shape, P, on in cases:
        x = torch.randn(*shape, generator=g)
        expect_close(
            call(fn, x, P, what="image_to_patches", forbidden=[patchify]),
            patchify(x, P),
            "image_to_patches",
            mistakes=patchify_mistakes(x, P),
            on=on,
        )
    x = torch.randint(0, 256, (2, 1, 8, 8), generator=g, dtype=torch.uint8)  # raw pixels, as stored
    out = call(fn, x, 4, what="image_to_patches", forbidden=[patchify])
    expect_dtype(out, torch.uint8, "image_to_patches on uint8 images (patchify only moves pixels: keep the dtype)")
    expect_close(out, patchify(x, 4), "image_to_patches", mistakes=patchify_mistakes(x, 4), on="uint8 images")


# ---------------------------------------------------------------------------------------------
# the class token and the positions
# ---------------------------------------------------------------------------------------------
def class_and_positions_mistakes(x, c, p) -> dict:
    """The usual mistakes for patch tokens x (B, N, D), class token c (1, 1, D), positions p (1, N+1, D)."""
    cls = c.expand(x.shape[0], -1, -1)  # (B, 1, D)
    return {
        "the positions were added before the class token was prepended, so the class token got no "
        "position and the patches got rows 1..N only: concatenate first, then add pos_embed": torch.cat(
            [cls, x + p[:, 1:]], 1
        ),
        "the positions were added to the patches before the prepend and are shifted by one "
        "(patch i got the class position's row): concatenate first, then add pos_embed": torch.cat(
            [cls + p[:, -1:], x + p[:, :-1]], 1
        ),
        "the class token is at the end: it must be the first token (index 0)": torch.cat([x, cls], 1) + p,
        "pos_embed is missing: add E_pos to every token, class token included": torch.cat([cls, x], 1),
    }


def class_and_positions_properties(fn) -> None:
    """Visible checks: shape (B, N+1, D); token 0 is x_class + E_pos[0], the same for every image."""
    g = torch.Generator().manual_seed(61)
    x, c, p = torch.randn(3, 5, 4, generator=g), torch.randn(1, 1, 4, generator=g), torch.randn(1, 6, 4, generator=g)
    out = call(fn, x, c, p, what="add_class_and_positions")
    expect_shape(out, (3, 6, 4), "add_class_and_positions for B=3, N=5, D=4")
    expect_dtype(out, x.dtype, "add_class_and_positions' output")
    expect_close(
        out[:, 0], (c + p[:, :1])[:, 0].expand(3, -1), "token 0 (it must be x_class + E_pos[0] for every image)"
    )


def check_class_and_positions(fn) -> None:
    """Hidden checks: several (B, N, D), batch 1, a single patch, float64."""
    g = torch.Generator().manual_seed(62)
    cases = (
        ((5, 16, 8), torch.float32, "a batch of 5 with 16 patches"),
        ((1, 49, 4), torch.float32, "a batch of one image"),
        ((3, 1, 6), torch.float32, "images of a single patch"),
        ((2, 7, 3), torch.float64, "float64 tokens"),
    )
    for (B, N, D), dtype, on in cases:
        x, c, p = (torch.randn(*s, generator=g, dtype=dtype) for s in ((B, N, D), (1, 1, D), (1, N + 1, D)))
        right = torch.cat([c.expand(B, -1, -1), x], 1) + p
        out = call(fn, x, c, p, what="add_class_and_positions")
        expect_close(out, right, "z_0", mistakes=class_and_positions_mistakes(x, c, p), on=on)
        expect_dtype(out, dtype, "z_0")


# ---------------------------------------------------------------------------------------------
# attention rollout
# ---------------------------------------------------------------------------------------------
def rollout_mistakes(attn: list) -> dict:
    """The usual rollout mistakes, each as the (B, T, T) it produces on attn (per layer (B, h, T, T))."""
    eye = torch.eye(attn[0].shape[-1], dtype=attn[0].dtype)
    norm = lambda a: a / a.sum(-1, keepdim=True)  # noqa: E731

    def chain(step, left=True, fuse=lambda a: a.mean(1)):
        r = None
        for a in attn:
            a = step(fuse(a))
            r = a if r is None else (a @ r if left else r @ a)
        return r

    return {
        "the identity (residual connection) is missing: add torch.eye(T) to each layer's averaged attention": chain(
            lambda a: a
        ),
        "the rows are not renormalised after adding the identity: divide each row by its sum": chain(lambda a: a + eye),
        "the layers are multiplied in the wrong order: the later layer goes on the LEFT (R = A_l @ R)": chain(
            lambda a: norm(a + eye), left=False
        ),
        "the heads are combined with a max (or a sum), not averaged: use .mean(dim=1)": chain(
            lambda a: norm(a + eye), fuse=lambda a: a.amax(1)
        ),
        "only the last layer is used: multiply all layers together": norm(attn[-1].mean(1) + eye),
    }


def _random_attention(B: int, h: int, T: int, L: int, g: torch.Generator, dtype=torch.float32) -> list:
    return [torch.randn(B, h, T, T, generator=g, dtype=dtype).mul(2).softmax(-1) for _ in range(L)]


def rollout_properties(fn) -> None:
    """Visible checks: shape (B, T, T), non-negative rows that sum to one."""
    attn = _random_attention(2, 3, 5, 3, torch.Generator().manual_seed(63))
    out = call(fn, attn, what="rollout")
    expect_shape(out, (2, 5, 5), "rollout of 3 layers of (2, 3, 5, 5)")
    expect(bool((out >= 0).all()), "rollout has negative entries: every step keeps the entries non-negative.")
    expect_close(out.sum(-1), torch.ones(2, 5), "the row sums of rollout (each row is a distribution)", atol=1e-5)


def check_rollout(fn) -> None:
    """Hidden checks: batch 1, one head, one layer, odd T, float64; the reference is vit_maps.attention_rollout."""
    g = torch.Generator().manual_seed(64)
    cases = (
        ((1, 4, 17, 4), torch.float32, "one image, 4 heads, 4 layers"),
        ((3, 2, 6, 1), torch.float32, "a single layer"),
        ((2, 1, 9, 6), torch.float32, "a single head and 6 layers"),
        ((2, 3, 5, 3), torch.float64, "float64 weights"),
    )
    for (B, h, T, L), dtype, on in cases:
        attn = _random_attention(B, h, T, L, g, dtype)
        out = call(fn, attn, what="rollout", forbidden=[attention_rollout])
        expect_close(out, attention_rollout(attn), "rollout", mistakes=rollout_mistakes(attn), atol=1e-5, on=on)
        expect_dtype(out, dtype, "rollout")


# ---------------------------------------------------------------------------------------------
# the whole forward pass, from the weights
# ---------------------------------------------------------------------------------------------
VIT_MODULES = [ViT, EncoderBlock, MultiHeadAttention, PatchEmbedding, MLP]  # what the build exercise must not use


def functional_vit(
    w: dict,
    config: ViTConfig,
    images: torch.Tensor,
    *,
    pool: str = "class",
    pre_ln: bool = True,
    residual: bool = True,
    positions: str = "after",
    final_norm: bool = True,
    n_heads: int | None = None,
    act=F.gelu,
    scale: bool = True,
) -> torch.Tensor:
    """ViT logits from a state dict, with switches that reproduce the known mistakes (defaults: the right model)."""
    D, eps, h = config.d_model, config.layer_norm_eps, n_heads or config.n_heads

    def lin(name, x):
        return F.linear(x, w[name + ".weight"], w[name + ".bias"])

    def ln(name, x):
        return F.layer_norm(x, (D,), w[name + ".weight"], w[name + ".bias"], eps)

    def mlp(p, x):
        return lin(p + "mlp.fc2", act(lin(p + "mlp.fc1", x)))

    def msa(p, x):
        q, k, v = (split_heads(lin(f"{p}attn.{n}_proj", x), h) for n in "qkv")  # (B, h, T, d_h)
        scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
        return lin(f"{p}attn.out_proj", merge_heads(scores.softmax(-1) @ v))

    x = lin("patch_embed.proj", patchify(images, config.patch_size))  # (B, N, D)
    cls, pos = w["cls_token"].expand(x.shape[0], -1, -1), w["pos_embed"]
    z = {
        "after": torch.cat([cls, x], 1) + pos,
        "before": torch.cat([cls, x + pos[:, 1:]], 1),
        "none": torch.cat([cls, x], 1),
    }[positions]
    for i in range(config.n_layers):
        p = f"blocks.{i}."
        if pre_ln:
            z = msa(p, ln(p + "ln1", z)) + (z if residual else 0)
            z = mlp(p, ln(p + "ln2", z)) + (z if residual else 0)
        else:  # post-LN, the 2017 transformer's order
            z = ln(p + "ln1", z + msa(p, z))
            z = ln(p + "ln2", z + mlp(p, z))
    z = ln("norm", z) if final_norm else z
    y = {"class": z[:, 0], "mean": z.mean(1), "last": z[:, -1]}[pool]
    return lin("head", y)


def vit_logits_mistakes(w: dict, config: ViTConfig, images: torch.Tensor) -> dict:
    """The known mistakes of the build exercise, each as the logits it produces."""
    f = lambda **kw: functional_vit(w, config, images, **kw)  # noqa: E731
    return {
        "the head reads the mean of all tokens: it reads the class token (token 0) only": f(pool="mean"),
        "the head reads the last token: the class token is token 0": f(pool="last"),
        "the final LayerNorm is missing: y = LN(z_L^0), with the weights norm.weight and norm.bias": f(
            final_norm=False
        ),
        "LayerNorm comes after each residual addition (post-LN, the 2017 transformer): ViT normalises "
        "inside each branch, z' = MSA(LN(z)) + z": f(pre_ln=False),
        "the residual connections are missing: add each branch's output to z": f(residual=False),
        "the position embeddings are missing: add pos_embed after prepending the class token": f(positions="none"),
        "the positions were added before the class token was prepended: concatenate first, then add pos_embed": f(
            positions="before"
        ),
        "the attention uses a single head: split q, k and v into config.n_heads heads (split_heads)": f(n_heads=1),
        "the attention scores are not divided by sqrt(d_head)": f(scale=False),
        "the MLP uses ReLU: ViT's MLP uses GELU (F.gelu)": f(act=F.relu),
    }


def random_vit(config: ViTConfig, seed: int, dtype=torch.float32) -> tuple[ViT, dict]:
    """The course ViT with random weights of every kind (no zero biases, no unit LayerNorms), and its state dict."""
    g = torch.Generator().manual_seed(seed)
    model = ViT(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=dtype)
            if name.endswith("norm.weight") or ".ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * noise)  # LayerNorm gains near 1
            elif p.dim() == 2 and name not in ("cls_token", "pos_embed"):
                p.copy_(noise / math.sqrt(p.shape[1]))  # Linear weights: unit-variance outputs
            else:
                p.copy_(0.5 * noise)  # biases, class token, positions
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def hand_worked_vit() -> tuple[ViTConfig, dict, torch.Tensor]:
    """The visible example: a ViT whose blocks have zero weights and biases (LayerNorm gains 1), so each adds nothing.

    D = 2, one block, 3 classes, a 4x4 grey image cut into 2x2 patches. x_class = (3, 2) and
    E_pos[0] = (0, -1), so the class token reaches the final LayerNorm as (3, 1), which it
    maps to (1, -1). The head has rows (1, 0), (0, 1), (1, 1) and bias (0, 0, 5): the logits
    are (1, -1, 5) for every image. Returns (config, weights, images (2, 1, 4, 4)).
    """
    config = ViTConfig(image_size=4, patch_size=2, n_classes=3, d_model=2, n_layers=1, n_heads=1, d_ff=2)
    _, w = random_vit(config, seed=65)
    w = {k: torch.zeros_like(v) if k.startswith("blocks.") else v for k, v in w.items()}
    w["blocks.0.ln1.weight"], w["blocks.0.ln2.weight"] = torch.ones(2), torch.ones(2)
    w["cls_token"] = torch.tensor([[[3.0, 2.0]]])
    w["pos_embed"][0, 0] = torch.tensor([0.0, -1.0])
    w["norm.weight"], w["norm.bias"] = torch.ones(2), torch.zeros(2)
    w["head.weight"], w["head.bias"] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0.0, 0.0, 5.0])
    images = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(66))
    return config, w, images


def vit_logits_properties(fn) -> None:
    """Visible checks on random weights: shape (B, n_classes), dtype, each image scored on its own."""
    config = ViTConfig(image_size=8, patch_size=4, n_classes=3, d_model=8, n_layers=2, n_heads=2, d_ff=16)
    _, w = random_vit(config, seed=67)
    images = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(68))
    out = call(fn, w, config, images, what="vit_logits", forbidden=VIT_MODULES)
    expect_shape(out, (3, 3), "vit_logits for 3 images and 3 classes")
    expect_dtype(out, torch.float32, "vit_logits' output")
    expect(bool(torch.isfinite(out).all()), "vit_logits returned NaN or inf on random weights.")
    alone = call(fn, w, config, images[1:2], what="vit_logits", forbidden=VIT_MODULES)
    expect_close(
        alone, out[1:2], "the logits of image 1 scored alone (they must not depend on the other images)", atol=1e-4
    )


def check_vit_logits(fn) -> None:
    """Hidden checks: the course ViT on random weights, several configs (batch 1, one patch, 3 channels, float64)."""
    cases = (
        (ViTConfig(8, 4, 1, 3, d_model=8, n_layers=2, n_heads=2, d_ff=16), 3, torch.float32, "a batch of 3 images"),
        (ViTConfig(6, 2, 3, 5, d_model=12, n_layers=1, n_heads=3, d_ff=8), 1, torch.float32, "one colour image"),
        (ViTConfig(4, 4, 2, 2, d_model=4, n_layers=3, n_heads=2, d_ff=6), 2, torch.float64, "float64 weights"),
    )
    for seed, (config, B, dtype, on) in enumerate(cases, start=70):
        model, w = random_vit(config, seed, dtype)
        g = torch.Generator().manual_seed(seed)
        images = torch.randn(B, config.in_channels, config.image_size, config.image_size, generator=g, dtype=dtype)
        with torch.no_grad():
            right = model(images)
        out = call(fn, w, config, images, what="vit_logits", forbidden=VIT_MODULES)
        expect_close(
            out, right, "vit_logits", atol=1e-4, rtol=1e-4, mistakes=vit_logits_mistakes(w, config, images), on=on
        )
        expect_dtype(out, dtype, "vit_logits")

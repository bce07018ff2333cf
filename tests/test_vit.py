"""course_utils.vit against transformers' ViT, ViTMAE and Swin, and against its own definitions.

Parameter counts of the paper's three models (built on the "meta" device, nothing allocated),
outputs equal to `ViTForImageClassification` with copied weights, patchify as a strided
convolution and its round trip (hypothesis), Swin's masks against `transformers`' Swin and
against a direct definition, MAE's masking against `transformers`' ViTMAE, rollout's algebra.
"""
import doctest
import math

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.vit as vit
from course_utils.vit import (VIT_PRESETS, PatchEmbedding, ViT, ViTConfig, attention_rollout, count_parameters,
                              patchify, position_similarity, random_crop_flip, random_patch_mask,
                              rollout_class_map, swin_window_mask, unpatchify)

transformers = pytest.importorskip("transformers")


def test_doctests():
    result = doctest.testmod(vit, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0


# ------------------------------------------------------------------ patches
@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 3), gh=st.integers(1, 4), gw=st.integers(1, 4), p=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_patchify_round_trip_and_conv(b, c, gh, gw, p, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, gh * p, gw * p, generator=g, dtype=torch.float64)
    patches = patchify(x, p)
    assert patches.shape == (b, gh * gw, c * p * p)
    assert torch.equal(unpatchify(patches, p, (gh * p, gw * p), c), x)
    # patch n is the square at grid row n // gw, column n % gw, flattened (channel, row, column)
    n = int(torch.randint(0, gh * gw, (1,), generator=g))
    i, j = divmod(n, gw)
    assert torch.equal(patches[:, n], x[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(b, -1))
    # the linear projection of the patches is a strided convolution
    emb = PatchEmbedding(p, c, 5).double()
    conv_out = emb.to_conv()(x).flatten(2).transpose(1, 2)           # (B, N, D), row-major like patchify
    assert torch.allclose(emb(x), conv_out, atol=1e-12)
    back = PatchEmbedding.from_conv(emb.to_conv())
    assert torch.allclose(back(x), emb(x), atol=1e-12)


def test_patchify_rejects_bad_input():
    with pytest.raises(ValueError, match="multiples of patch_size"):
        patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(torch.zeros(28, 28), 7)
    with pytest.raises(TypeError, match="images"):
        patchify([[0.0]], 1)
    with pytest.raises(ValueError, match="expected patches of shape"):
        unpatchify(torch.zeros(1, 16, 48), 7, 28, 1)
    with pytest.raises(ValueError, match="kernel equal to its stride"):
        PatchEmbedding.from_conv(nn.Conv2d(1, 4, 3, stride=1))
    with pytest.raises(ValueError, match="divisible by n_heads"):
        ViTConfig(dim=10, n_heads=4)


# ------------------------------------------------------------------ parameter counts vs transformers
PAPER = {"ViT-Base/16": 86e6, "ViT-Large/16": 307e6, "ViT-Huge/14": 632e6}


def _hf_config(cfg: ViTConfig):
    return transformers.ViTConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.in_channels,
                                  hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.n_heads,
                                  intermediate_size=cfg.mlp_dim, num_labels=cfg.n_classes,
                                  layer_norm_eps=cfg.layer_norm_eps, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("name", list(VIT_PRESETS))
def test_parameter_counts_match_transformers_and_the_paper(name):
    cfg = VIT_PRESETS[name]
    with torch.device("meta"):
        ours = count_parameters(ViT(cfg))
        theirs = count_parameters(transformers.ViTForImageClassification(_hf_config(cfg)))
        backbone = count_parameters(transformers.ViTModel(_hf_config(cfg), add_pooling_layer=False))
    assert ours == theirs, f"{name}: ours {ours:,} vs transformers {theirs:,}"
    assert ours - (cfg.dim + 1) * cfg.n_classes == backbone, "everything but the head is ViTModel (no pooler)"
    # the paper rounds (and its Large row is the count with the pre-training head): within 1 %
    assert abs(ours - PAPER[name]) / PAPER[name] < 0.01, f"{name}: {ours:,} vs the paper's {PAPER[name]:,.0f}"


def test_parameter_count_formula():
    cfg = VIT_PRESETS["ViT-Base/16"]
    D, L, M, P, C, N, K = cfg.dim, cfg.depth, cfg.mlp_dim, cfg.patch_size, cfg.in_channels, cfg.n_patches, cfg.n_classes
    per_block = 4 * (D * D + D) + (D * M + M) + (M * D + D) + 2 * 2 * D
    expected = (C * P * P * D + D) + D + (N + 1) * D + L * per_block + 2 * D + (D * K + K)
    with torch.device("meta"):
        assert count_parameters(ViT(cfg)) == expected


# ------------------------------------------------------------------ outputs vs transformers
@pytest.mark.parametrize("image_size,patch,channels,dim,depth,heads,mlp", [(28, 7, 1, 32, 2, 4, 64),
                                                                         (32, 8, 3, 48, 3, 3, 96)])
def test_outputs_equal_transformers_vit(image_size, patch, channels, dim, depth, heads, mlp):
    torch.manual_seed(0)
    cfg = ViTConfig(image_size, patch, channels, 7, dim=dim, depth=depth, n_heads=heads, mlp_dim=mlp,
                    layer_norm_eps=1e-12)
    hf = transformers.ViTForImageClassification(_hf_config(cfg)).eval()
    with torch.no_grad():   # random, non-trivial embeddings (transformers starts cls_token at 0)
        hf.vit.embeddings.cls_token.normal_()
        hf.vit.embeddings.position_embeddings.normal_(std=0.5)
    ours = ViT.from_transformers(hf).eval()
    x = torch.randn(4, channels, image_size, image_size)
    with torch.no_grad():
        ref = hf(pixel_values=x, output_attentions=True)
        logits, maps = ours(x, return_attention=True)
        fast = ours(x)
        feats = ours.features(x)
        hidden = hf.vit(pixel_values=x).last_hidden_state[:, 0]
    assert torch.allclose(logits, ref.logits, atol=1e-4), (logits - ref.logits).abs().max()
    assert torch.allclose(fast, ref.logits, atol=1e-4), "the fused-attention path must agree too"
    assert torch.allclose(feats, hidden, atol=1e-4), "y = LN(z_L^0) equals transformers' last hidden state [CLS]"
    if ref.attentions is not None:
        for a, b in zip(maps, ref.attentions):
            assert torch.allclose(a, b, atol=1e-5)


def test_training_and_eval_paths_agree():
    torch.manual_seed(1)
    m = ViT(ViTConfig(dim=32, depth=2, n_heads=2, mlp_dim=64)).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        a, maps = m(x, return_attention=True)
        assert torch.allclose(a, m(x), atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (5, 2, 17, 17)
    assert torch.allclose(maps[1].sum(-1), torch.ones(5, 2, 17), atol=1e-5)


# ------------------------------------------------------------------ rollout
def _reference_rollout(attn, r=0.5):
    """Abnar & Zuidema's recipe, one image, a Python loop over layers."""
    T = attn[0].shape[-1]
    result = torch.eye(T, dtype=attn[0].dtype)
    for a in attn:
        a = (1 - r) * a.mean(0) + r * torch.eye(T, dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result


@settings(max_examples=30, deadline=None)
@given(layers=st.integers(1, 4), heads=st.integers(1, 3), t=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_rollout(layers, heads, t, seed):
    g = torch.Generator().manual_seed(seed)
    attn = [torch.randn(2, heads, t, t, generator=g, dtype=torch.float64).softmax(-1) for _ in range(layers)]
    r = attention_rollout(attn)
    assert r.shape == (2, t, t)
    assert torch.allclose(r.sum(-1), torch.ones(2, t, dtype=torch.float64)), "rows stay distributions"
    for b in range(2):
        assert torch.allclose(r[b], _reference_rollout([a[b] for a in attn]))
    assert torch.allclose(attention_rollout([a[0] for a in attn]), r[0]), "(h, T, T) input works too"
    # no residual and one head: the plain product of the attention matrices
    plain = attention_rollout(attn, residual=0.0)
    prod = attn[0].mean(1)
    for a in attn[1:]:
        prod = a.mean(1) @ prod
    assert torch.allclose(plain, prod)


def test_rollout_class_map_and_errors():
    attn = [torch.full((1, 2, 5, 5), 0.2)] * 3
    m = rollout_class_map(attn, 2)
    assert m.shape == (1, 2, 2)
    with pytest.raises(ValueError, match="1 \\+ 3x3"):
        rollout_class_map(attn, 3)
    with pytest.raises(TypeError, match="list"):
        attention_rollout(torch.ones(1, 2, 5, 5))
    with pytest.raises(ValueError, match="residual"):
        attention_rollout(attn, residual=2.0)


def test_position_similarity():
    grid = 3
    pos = torch.randn(1, grid * grid + 1, 8)
    sim = position_similarity(pos, grid)
    assert sim.shape == (grid, grid, grid, grid)
    for i in range(grid):
        for j in range(grid):
            assert math.isclose(float(sim[i, j, i, j]), 1.0, rel_tol=1e-5)
    assert torch.allclose(sim[0, 1, 2, 2], F.cosine_similarity(pos[0, 2], pos[0, 9], dim=0))


# ------------------------------------------------------------------ Swin masks
def _direct_swin_mask(H, W, window, shift):
    """Definition without the roll: windows displaced by `shift`, edge pieces kept apart."""
    def block(i, n):
        return (i - shift) // window if shift else i // window
    ids = [(block(i, H), block(j, W)) for i in range(H) for j in range(W)]
    return torch.tensor([[a == b for b in ids] for a in ids])


@pytest.mark.parametrize("H,W,window", [(4, 4, 2), (8, 8, 4), (6, 9, 3), (8, 4, 4)])
def test_swin_masks(H, W, window):
    for shift in range(window):
        mask = swin_window_mask((H, W), window, shift)
        assert mask.shape == (H * W, H * W) and mask.dtype == torch.bool
        assert torch.equal(mask, mask.T) and bool(mask.diagonal().all())
        assert torch.equal(mask, _direct_swin_mask(H, W, window, shift)), f"shift={shift}"
    # no shift: every token sees exactly window^2 tokens
    assert bool((swin_window_mask((H, W), window).sum(-1) == window * window).all())


@pytest.mark.parametrize("grid,window", [(8, 4), (14, 7), (6, 2)])
def test_swin_shifted_mask_matches_transformers(grid, window):
    from transformers.models.swin.modeling_swin import SwinLayer, window_partition
    shift = window // 2
    hf_cfg = transformers.SwinConfig(embed_dim=8, window_size=window, num_heads=[1])
    layer = SwinLayer(hf_cfg, dim=8, input_resolution=(grid, grid), num_heads=1, shift_size=shift)
    layer.set_shift_and_window_size((grid, grid))
    hf_mask = layer.get_attn_mask(grid, grid, torch.float32, torch.device("cpu")) == 0   # (nW, w^2, w^2)
    ours = swin_window_mask(grid, window, shift)
    # token ids of the rolled grid, cut into windows the way transformers does
    ids = torch.arange(grid * grid, dtype=torch.float32).view(1, grid, grid, 1)
    rolled = torch.roll(ids, shifts=(-shift, -shift), dims=(1, 2))
    windows = window_partition(rolled, window).view(-1, window * window).long()        # (nW, w^2)
    for w, tok in enumerate(windows):
        assert torch.equal(ours[tok][:, tok], hf_mask[w]), f"window {w}"
    # and nothing outside a window may attend
    same_window = torch.zeros(grid * grid, grid * grid, dtype=torch.bool)
    for tok in windows:
        same_window[tok[:, None], tok[None, :]] = True
    assert not bool((ours & ~same_window).any())


def test_swin_mask_errors():
    with pytest.raises(ValueError, match="multiple of window"):
        swin_window_mask(7, 2)
    with pytest.raises(ValueError, match="shift must be smaller"):
        swin_window_mask(8, 4, 4)


# ------------------------------------------------------------------ MAE masking
def test_random_patch_mask_matches_transformers_vitmae():
    from transformers import ViTMAEConfig
    from transformers.models.vit_mae.modeling_vit_mae import ViTMAEEmbeddings
    B, N, D = 3, 16, 5
    emb = ViTMAEEmbeddings(ViTMAEConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=D, mask_ratio=0.75))
    seq = torch.randn(B, N, D)
    noise = torch.rand(B, N)
    kept, hf_mask, _ = emb.random_masking(seq, noise=noise)
    ids_keep, mask = random_patch_mask(B, N, 0.75, noise=noise)
    assert torch.equal(mask, hf_mask)
    assert torch.equal(torch.gather(seq, 1, ids_keep[..., None].expand(-1, -1, D)), kept)


def test_random_patch_mask_properties():
    g = torch.Generator().manual_seed(0)
    ids, mask = random_patch_mask(4, 49, 0.75, generator=g)
    assert ids.shape == (4, 12) and bool((mask.sum(1) == 37).all())
    assert bool((mask.gather(1, ids) == 0).all())
    with pytest.raises(ValueError, match="mask_ratio"):
        random_patch_mask(1, 4, 1.0)


# ------------------------------------------------------------------ augmentation
def test_random_crop_flip():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    assert torch.equal(random_crop_flip(x, pad=0, flip=False), x)
    g = torch.Generator().manual_seed(3)
    y = random_crop_flip(x, pad=1, flip=True, generator=g)
    assert y.shape == x.shape
    # every output is a flip and/or shift of its input: compare with all 18 candidates
    padded = F.pad(x, (1, 1, 1, 1))
    for b in range(2):
        candidates = [c for dy in range(3) for dx in range(3)
                      for c in (padded[b, :, dy:dy + 5, dx:dx + 5], padded[b, :, dy:dy + 5, dx:dx + 5].flip(-1))]
        assert any(torch.equal(y[b], c) for c in candidates)

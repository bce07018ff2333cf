"""course_utils.vit against transformers' ViT and against its own definitions.

Parameter counts of the paper's three models (built on the "meta" device, nothing allocated),
outputs equal to `ViTForImageClassification` with copied weights, patchify as a strided
convolution and its round trip (hypothesis). Rollout is tests/test_vit_maps.py, Swin's and
MAE's masks tests/test_patch_masks.py, the augmentation tests/test_augment.py.
"""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.patch_masks as patch_masks
import course_utils.vit as vit
import course_utils.vit_maps as vit_maps
from course_utils.measure import count_parameters
from course_utils.vit import VIT_PRESETS, PatchEmbedding, ViT, ViTConfig, hf_vit_config, patchify, unpatchify

transformers = pytest.importorskip("transformers")


def test_doctests():
    # the module's examples, with those that moved out of it (rollout, Swin's mask) counted as before
    results = [doctest.testmod(m, raise_on_error=False) for m in (vit, vit_maps, patch_masks)]
    assert sum(r.attempted for r in results) >= 5 and sum(r.failed for r in results) == 0
    assert results[0].attempted >= 3


# ------------------------------------------------------------------ patches
@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 3),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    p=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_patchify_round_trip_and_conv(b, c, gh, gw, p, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, gh * p, gw * p, generator=g, dtype=torch.float64)
    patches = patchify(x, p)
    assert patches.shape == (b, gh * gw, c * p * p)
    assert torch.equal(unpatchify(patches, p, (gh * p, gw * p), c), x)
    # patch n is the square at grid row n // gw, column n % gw, flattened (channel, row, column)
    n = int(torch.randint(0, gh * gw, (1,), generator=g))
    i, j = divmod(n, gw)
    assert torch.equal(patches[:, n], x[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p].reshape(b, -1))
    # the linear projection of the patches is a strided convolution
    emb = PatchEmbedding(p, c, 5).double()
    conv_out = emb.to_conv()(x).flatten(2).transpose(1, 2)  # (B, N, D), row-major like patchify
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
        ViTConfig(d_model=10, n_heads=4)


# ------------------------------------------------------------------ parameter counts vs transformers
PAPER = {"ViT-Base/16": 86e6, "ViT-Large/16": 307e6, "ViT-Huge/14": 632e6}


def test_hf_vit_config_maps_every_size():
    config = ViTConfig(32, 8, 3, 7, d_model=48, n_layers=3, n_heads=3, d_ff=96, dropout=0.1, layer_norm_eps=1e-12)
    hf = hf_vit_config(config, attn_implementation="eager")
    assert (hf.image_size, hf.patch_size, hf.num_channels, hf.num_labels) == (32, 8, 3, 7)
    assert (hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads, hf.intermediate_size) == (48, 3, 3, 96)
    assert (hf.layer_norm_eps, hf.hidden_dropout_prob, hf.attention_probs_dropout_prob) == (1e-12, 0.1, 0.1)
    with pytest.raises(TypeError, match="ViTConfig"):
        hf_vit_config({"d_model": 48})


@pytest.mark.parametrize("name", list(VIT_PRESETS))
def test_parameter_counts_match_transformers_and_the_paper(name):
    config = VIT_PRESETS[name]
    with torch.device("meta"):
        ours = count_parameters(ViT(config), trainable_only=True)
        theirs = count_parameters(transformers.ViTForImageClassification(hf_vit_config(config)), trainable_only=True)
        backbone = count_parameters(
            transformers.ViTModel(hf_vit_config(config), add_pooling_layer=False), trainable_only=True
        )
    assert ours == theirs, f"{name}: ours {ours:,} vs transformers {theirs:,}"
    assert ours - (config.d_model + 1) * config.n_classes == backbone, "everything but the head is ViTModel (no pooler)"
    # the paper rounds (and its Large row is the count with the pre-training head): within 1 %
    assert abs(ours - PAPER[name]) / PAPER[name] < 0.01, f"{name}: {ours:,} vs the paper's {PAPER[name]:,.0f}"


def test_parameter_count_formula():
    config = VIT_PRESETS["ViT-Base/16"]
    D, L, M, P, C = config.d_model, config.n_layers, config.d_ff, config.patch_size, config.in_channels
    N, K = config.n_patches, config.n_classes
    per_block = 4 * (D * D + D) + (D * M + M) + (M * D + D) + 2 * 2 * D
    expected = (C * P * P * D + D) + D + (N + 1) * D + L * per_block + 2 * D + (D * K + K)
    with torch.device("meta"):
        assert count_parameters(ViT(config), trainable_only=True) == expected


# ------------------------------------------------------------------ outputs vs transformers
@pytest.mark.parametrize(
    "image_size,patch,channels,d_model,n_layers,heads,d_ff", [(28, 7, 1, 32, 2, 4, 64), (32, 8, 3, 48, 3, 3, 96)]
)
def test_outputs_equal_transformers_vit(image_size, patch, channels, d_model, n_layers, heads, d_ff):
    torch.manual_seed(0)
    config = ViTConfig(
        image_size,
        patch,
        channels,
        7,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=heads,
        d_ff=d_ff,
        layer_norm_eps=1e-12,
    )
    hf = transformers.ViTForImageClassification(hf_vit_config(config)).eval()
    with torch.no_grad():  # random, non-trivial embeddings (transformers starts cls_token at 0)
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
    m = ViT(ViTConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64)).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        a, maps = m(x, return_attention=True)
        assert torch.allclose(a, m(x), atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (5, 2, 17, 17)
    assert torch.allclose(maps[1].sum(-1), torch.ones(5, 2, 17), atol=1e-5)


def test_the_model_keeps_its_config_and_the_block_spells_return_attention():
    config = ViTConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64)
    m = ViT(config).eval()
    assert m.config is config and len(m.blocks) == config.n_layers
    assert m.blocks[0].mlp.fc1.out_features == config.d_ff and m.patch_embed.d_model == config.d_model
    z = m.embed(torch.randn(2, 1, 28, 28))
    with torch.no_grad():
        out, weights = m.blocks[0](z, return_attention=True)
        fast, none = m.blocks[0](z)
    assert weights.shape == (2, 2, 17, 17) and none is None
    assert torch.allclose(out, fast, atol=1e-5)
    with pytest.raises(TypeError, match="config must be a ViTConfig"):
        ViT({"d_model": 32})

"""course_utils.patch_masks: Swin's masks against `transformers`' Swin and a direct definition; MAE's masking
against `transformers`' ViTMAE."""

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch

from course_utils.patch_masks import random_patch_mask, swin_window_mask

transformers = pytest.importorskip("transformers")


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
    hf_config = transformers.SwinConfig(embed_dim=8, window_size=window, num_heads=[1])
    layer = SwinLayer(hf_config, dim=8, input_resolution=(grid, grid), num_heads=1, shift_size=shift)
    layer.set_shift_and_window_size((grid, grid))
    hf_mask = layer.get_attn_mask(grid, grid, torch.float32, torch.device("cpu")) == 0  # (nW, w^2, w^2)
    ours = swin_window_mask(grid, window, shift)
    # token ids of the rolled grid, cut into windows the way transformers does
    ids = torch.arange(grid * grid, dtype=torch.float32).view(1, grid, grid, 1)
    rolled = torch.roll(ids, shifts=(-shift, -shift), dims=(1, 2))
    windows = window_partition(rolled, window).view(-1, window * window).long()  # (nW, w^2)
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

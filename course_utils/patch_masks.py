"""Beyond ViT: which patches attend to which (Swin's windows) and which are seen at all (MAE's masking).

Notebook 06 draws both as pictures on a grid of patch tokens (row-major, like
`course_utils.vit.patchify`):

- `swin_window_mask` (Liu et al., 2021): (N, N) boolean, True = may attend. Tokens attend only
  inside M x M windows, so the cost grows linearly with the image; every second layer shifts the
  windows by M/2 so information crosses their borders. Tested against `transformers`' Swin.
- `random_patch_mask` (He et al., 2022): MAE hides a random 75 % of the patches and runs the
  encoder on the visible quarter only. Tested against `transformers`' ViTMAE.
"""

from __future__ import annotations

from typing import Optional

import torch

from course_utils.checks import check_int, check_number

__all__ = ["swin_window_mask", "random_patch_mask"]


def swin_window_mask(grid: int | tuple[int, int], window: int, shift: int = 0) -> torch.Tensor:
    """(N, N) bool, True = may attend: Swin's (shifted) window attention on a grid of N tokens, row-major.

    shift = 0: the grid is cut into window x window squares; a token attends only inside its own.
    shift > 0: Swin rolls the grid by -shift in both axes, cuts windows, and masks pairs that
    the roll brought together from opposite edges (their "region" labels differ). In the
    original coordinates this is a window grid displaced by `shift`, with smaller windows at
    the edges, so information crosses the old window borders in the next layer.

    >>> swin_window_mask(4, 2).int()[0]          # token (0, 0) sees its 2x2 window: tokens 0, 1, 4, 5
    tensor([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.int32)
    """
    fn = "swin_window_mask"
    H, W = (grid, grid) if isinstance(grid, int) and not isinstance(grid, bool) else tuple(grid)
    check_int(fn, "grid height", H)
    check_int(fn, "grid width", W)
    check_int(fn, "window", window)
    check_int(fn, "shift", shift, low=0)
    if H % window or W % window:
        raise ValueError(f"{fn}: the grid {H}x{W} must be a multiple of window={window}")
    if shift >= window:
        raise ValueError(f"{fn}: shift must be smaller than window={window}, got {shift}")

    def labels(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rolled = (torch.arange(n) - shift) % n  # position after torch.roll(-shift)
        win = rolled // window  # which window, in the rolled frame
        region = (
            (rolled >= n - window).long() + (rolled >= n - shift).long() if shift else torch.zeros(n, dtype=torch.long)
        )
        return win, region  # Swin's three regions per axis

    (wh, rh), (ww, rw) = labels(H), labels(W)
    win = (wh[:, None] * (W // window) + ww[None, :]).reshape(-1)  # (N,) window id per token
    reg = (rh[:, None] * 3 + rw[None, :]).reshape(-1)  # (N,) region id per token
    return (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])


def random_patch_mask(
    batch: int,
    n_patches: int,
    mask_ratio: float = 0.75,
    generator: Optional[torch.Generator] = None,
    noise: Optional[torch.Tensor] = None,
):
    """MAE's random masking: keep a random int(N (1 - ratio)) patches of every image, hide the rest.

    Like MAE, shuffle by sorting uniform noise, keep the first ones. Returns
    `ids_keep` (B, N_keep), the indices of the visible patches (in shuffled order), and
    `mask` (B, N) float with 1 = hidden, 0 = visible (MAE's convention for the loss).
    Pass `noise` (B, N) to reproduce another implementation exactly.
    """
    fn = "random_patch_mask"
    check_int(fn, "batch", batch)
    check_int(fn, "n_patches", n_patches)
    check_number(fn, "mask_ratio", mask_ratio, low=0.0, high=1.0, high_open=True)
    if noise is None:
        noise = torch.rand(batch, n_patches, generator=generator)
    elif tuple(noise.shape) != (batch, n_patches):
        raise ValueError(f"{fn}: noise must have shape ({batch}, {n_patches}), got {tuple(noise.shape)}")
    n_keep = int(n_patches * (1 - mask_ratio))
    ids_shuffle = noise.argsort(dim=1)  # (B, N) a random permutation per row
    ids_keep = ids_shuffle[:, :n_keep]  # (B, N_keep)
    mask = torch.ones(batch, n_patches, device=noise.device)
    mask.scatter_(1, ids_keep, 0.0)  # 0 = visible
    return ids_keep, mask

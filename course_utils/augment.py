"""Image augmentation on tensors (no torchvision): a random shift (crop of the zero-padded image) and a flip.

Notebook 06 trains its ViT and its CNN on the same augmented batches. Everything runs on the
tensor's device with per-image random offsets gathered at once (no Python loop over images),
and draws from an optional `torch.Generator` so a run is reproducible.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from course_utils.checks import check_int, check_tensor

__all__ = ["random_crop_flip"]


def random_crop_flip(
    images: torch.Tensor, pad: int = 2, flip: bool = True, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """A random shift by up to `pad` pixels (crop of the zero-padded image) and a random left-right flip.

    images (B, C, H, W) -> (B, C, H, W), a different crop and flip per image, all on the tensor's
    device. The crop is done by gathering with per-image offsets: no Python loop over images.
    """
    fn = "random_crop_flip"
    check_tensor(fn, "images", images, dim=4, shape="(B, C, H, W)")
    check_int(fn, "pad", pad, low=0)
    B, C, H, W = images.shape
    dev = images.device
    out = images
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(dev)
        rows = (dy[:, None] + torch.arange(H, device=dev))[:, None, :, None].expand(B, C, H, W + 2 * pad)
        out = padded.gather(2, rows)  # (B, C, H, W+2p)
        cols = (dx[:, None] + torch.arange(W, device=dev))[:, None, None, :].expand(B, C, H, W)
        out = out.gather(3, cols)  # (B, C, H, W)
    if flip:
        flipped = torch.rand(B, generator=generator).to(dev) < 0.5
        out = torch.where(flipped[:, None, None, None], out.flip(-1), out)
    return out

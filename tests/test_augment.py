"""course_utils.augment: every output is a shift and/or flip of its input."""

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import torch
import torch.nn.functional as F

from course_utils.augment import random_crop_flip


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
        candidates = [
            c
            for dy in range(3)
            for dx in range(3)
            for c in (padded[b, :, dy : dy + 5, dx : dx + 5], padded[b, :, dy : dy + 5, dx : dx + 5].flip(-1))
        ]
        assert any(torch.equal(y[b], c) for c in candidates)

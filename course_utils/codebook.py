"""Images as sequences of discrete tokens: a k-means codebook of image patches.

Notebook 08 builds this to show the text-to-image idea of Parti (Yu et al. 2022): cut
an image into p x p patches, replace each patch by the id of its nearest *codeword*, and
the image becomes a short sequence of integers, a "sentence" in a visual vocabulary. A
decoder-only transformer can then model text tokens followed by image tokens exactly as
it models text, and generate an image token by token; a decoder turns ids back into pixels.

Parti learns its codebook with a ViT-VQGAN (an encoder, a decoder and a learned codebook,
trained end to end). Here the codebook is plain k-means on raw pixel patches: no training
of networks, the same interface (encode -> ids -> decode), blurrier reconstructions.

    28 x 28 Fashion-MNIST image, p = 4  ->  7 x 7 = 49 patches  ->  49 ids in [0, K)

Concessions: Lloyd's algorithm with k-means++ seeding on a sample of patches (not all
millions of them); empty clusters are re-seeded with the worst-fitted patches.
"""

from __future__ import annotations

from typing import Optional

import torch

from course_utils import vit
from course_utils.checks import check_int, check_tensor

__all__ = ["patchify", "unpatchify", "kmeans", "PatchCodebook"]


def _check_images(fn: str, images, patch: int) -> None:
    """Grey images (N, H, W) in floating point whose sides are multiples of `patch`."""
    check_tensor(fn, "images", images, dim=3, dtype="float", shape="(N, H, W)")
    check_int(fn, "patch", patch)
    if images.shape[1] % patch or images.shape[2] % patch:
        raise ValueError(f"{fn}: image size {tuple(images.shape[1:])} is not a multiple of patch={patch}")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, H, W) -> (N, H/p * W/p, p*p): `course_utils.vit.patchify` for one-channel images.

    >>> patchify(torch.arange(16.).view(1, 4, 4), 2)[0, 1].tolist()   # top-right patch
    [2.0, 3.0, 6.0, 7.0]
    """
    _check_images("patchify", images, patch)
    return vit.patchify(images[:, None], patch)  # (N, L, p*p), raster order


def unpatchify(patches: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, L, p*p) -> (N, H, W): the inverse of `patchify`.

    >>> x = torch.randn(2, 8, 12); bool((unpatchify(patchify(x, 4), 8, 12) == x).all())
    True
    """
    check_tensor("unpatchify", "patches", patches, dim=3, shape="(N, L, p*p)")
    check_int("unpatchify", "height", height)
    check_int("unpatchify", "width", width)
    N, L, pp = patches.shape
    p = int(round(pp**0.5))
    if p * p != pp or height % p or width % p or (height // p) * (width // p) != L:
        raise ValueError(f"unpatchify: {L} patches of {pp} pixels do not tile a {height} x {width} image")
    return vit.unpatchify(patches, p, (height, width), 1)[:, 0]


def kmeans(
    x: torch.Tensor, k: int, n_iter: int = 20, generator: Optional[torch.Generator] = None, progress: bool = False
) -> tuple[torch.Tensor, list[float]]:
    """Lloyd's k-means on the rows of x (N, D) -> (centroids (k, D), mean squared error per iteration).

    Seeding: k-means++ (each new centre drawn with probability proportional to its squared
    distance to the nearest chosen centre), which avoids most bad local minima.
    The error never increases from one iteration to the next (each step is a minimisation).
    """
    check_tensor("kmeans", "x", x, dim=2, dtype="float", shape="(N, D)")
    check_int("kmeans", "k", k, 1, len(x))  # at most one centre per point
    check_int("kmeans", "n_iter", n_iter, 0)
    first = torch.randint(len(x), (1,), generator=generator)
    centres = [x[first]]  # k-means++ seeding
    d2 = torch.cdist(x, centres[0]).squeeze(1) ** 2  # (N,) to the nearest centre
    for _ in range(1, k):
        i = torch.multinomial(d2 + 1e-12, 1, generator=generator)
        centres.append(x[i])
        d2 = torch.minimum(d2, (torch.cdist(x, x[i]).squeeze(1)) ** 2)
    c = torch.cat(centres)  # (k, D)
    history = []
    steps = range(n_iter)
    if progress:
        from tqdm.auto import tqdm  # optional: only a progress bar needs it

        steps = tqdm(steps, desc="k-means", leave=False)
    for _ in steps:
        dist = torch.cdist(x, c) ** 2  # (N, k)
        best, assign = dist.min(dim=1)
        history.append(float(best.mean()) / x.shape[1])  # per-pixel MSE
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed with the worst-fitted points
            c[empty] = x[best.topk(int(empty.sum())).indices]
    return c, history


class PatchCodebook:
    """A visual vocabulary: K codewords of p x p pixels; encode images to ids, decode ids to images.

    >>> book = PatchCodebook(torch.stack([torch.zeros(4), torch.ones(4)]), patch=2)
    >>> book.encode(torch.tensor([[[0.1, 0.0], [0.2, 0.0]]])).tolist()
    [[0]]
    """

    def __init__(self, codewords: torch.Tensor, patch: int):
        check_int("PatchCodebook", "patch", patch)
        check_tensor("PatchCodebook", "codewords", codewords, dim=2, dtype="float", shape="(K, patch*patch)")
        if codewords.shape[1] != patch * patch:
            raise ValueError(
                f"PatchCodebook: codewords must be (K, patch*patch={patch * patch}), got "
                f"{tuple(codewords.shape) if isinstance(codewords, torch.Tensor) else type(codewords).__name__}"
            )
        self.codewords, self.patch = codewords, patch
        self.history: list[float] = []

    @classmethod
    def fit(
        cls,
        images: torch.Tensor,
        k: int,
        patch: int = 4,
        n_patches: int = 50_000,
        n_iter: int = 20,
        seed: int = 0,
        progress: bool = False,
    ) -> "PatchCodebook":
        """Learn K codewords by k-means on n_patches patches sampled from images (N, H, W) in [0, 1]."""
        _check_images("PatchCodebook.fit", images, patch)
        g = torch.Generator().manual_seed(seed)
        all_patches = patchify(images, patch).reshape(-1, patch * patch)
        pick = torch.randperm(len(all_patches), generator=g)[:n_patches]
        codewords, history = kmeans(all_patches[pick], k, n_iter, g, progress)
        book = cls(codewords, patch)
        book.history = history  # per-pixel MSE per iteration
        return book

    @property
    def size(self) -> int:
        return len(self.codewords)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) -> (N, H/p * W/p) long: each patch's nearest codeword, raster order."""
        _check_images("PatchCodebook.encode", images, self.patch)
        p = patchify(images, self.patch)  # (N, L, p*p)
        dist = torch.cdist(p, self.codewords.expand(len(p), -1, -1))  # (N, L, K)
        return dist.argmin(dim=-1)

    def decode(self, ids: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(N, L) ids -> (N, H, W): paste each id's codeword back in place."""
        check_tensor("PatchCodebook.decode", "ids", ids, dim=2, dtype="int", shape="(N, L)")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"PatchCodebook.decode: ids must lie in [0, {self.size}), got [{int(ids.min())}, {int(ids.max())}]"
            )
        return unpatchify(self.codewords[ids.long()], height, width)  # long: a uint8 index would be a mask

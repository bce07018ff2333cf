"""Looking inside a trained ViT: attention rollout and the similarity of its position embeddings.

Notebook 06 draws these over Fashion-MNIST images after training `course_utils.vit.ViT`:

- `attention_rollout` (Abnar & Zuidema, 2020): one layer's attention ignores that every token
  is already a mixture of tokens from the layers below; rollout follows the mixing through all
  layers (heads fused, the residual path added, rows renormalised, layers multiplied).
  `rollout_class_map` is its [class] row over the patches, as a (grid, grid) picture.
- `position_similarity`: the cosine similarity of each patch's learned position embedding with
  every other (Dosovitskiy et al., 2021, Figure 7): the 2-D grid the model rediscovered.

Concession: rollout ignores the MLPs and the value vectors; it is the accepted quick summary,
not an explanation of the model.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from course_utils.checks import check_choice, check_int, check_number

__all__ = ["attention_rollout", "rollout_class_map", "position_similarity"]


def attention_rollout(
    attentions: Sequence[torch.Tensor], residual: float = 0.5, head_fusion: str = "mean"
) -> torch.Tensor:
    """How much each output token draws on each input token through all layers (Abnar & Zuidema, 2020).

    attentions: per layer (B, h, T, T) (or (h, T, T)), first layer first.
    Per layer: fuse the heads (mean, or max), add the residual path, A = (1 - r) W + r I,
    renormalise the rows to sum to 1, then chain the layers: R = A_L ... A_2 A_1.
    Returns R (B, T, T) (or (T, T)); row 0 is what the [class] token sees.

    >>> w = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])     # 1 head: everyone looks at token 1
    >>> attention_rollout([w])                           # the residual keeps half on oneself
    tensor([[0.5000, 0.5000],
            [0.0000, 1.0000]])
    """
    fn = "attention_rollout"
    if isinstance(attentions, torch.Tensor) or not isinstance(attentions, (list, tuple)) or not attentions:
        raise TypeError(
            f"{fn}: attentions must be a non-empty list of (B, h, T, T) tensors, one per layer, "
            f"got {type(attentions).__name__}"
        )
    check_number(fn, "residual", residual, low=0.0, high=1.0)
    check_choice(fn, "head_fusion", head_fusion, ("mean", "max", "min"))
    shape = attentions[0].shape
    for i, a in enumerate(attentions):
        if not isinstance(a, torch.Tensor) or a.dim() not in (3, 4) or a.shape != shape or a.shape[-1] != a.shape[-2]:
            raise ValueError(
                f"{fn}: attentions[{i}] must be (B, h, T, T) or (h, T, T) like attentions[0] "
                f"{tuple(shape)}, got {tuple(a.shape) if isinstance(a, torch.Tensor) else type(a)}"
            )
    T = shape[-1]
    eye = torch.eye(T, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = None
    for a in attentions:
        fused = {"mean": a.mean(dim=-3), "max": a.amax(dim=-3), "min": a.amin(dim=-3)}[head_fusion]  # (B, T, T)
        a_hat = (1 - residual) * fused + residual * eye  # attention + the skip connection
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)  # rows are distributions again
        rollout = a_hat if rollout is None else a_hat @ rollout  # later layers multiply from the left
    return rollout


def rollout_class_map(attentions: Sequence[torch.Tensor], grid: int, **kwargs) -> torch.Tensor:
    """The [class] row of the rollout over the patches, as an image: (B, grid, grid)."""
    check_int("rollout_class_map", "grid", grid)
    r = attention_rollout(attentions, **kwargs)
    if r.dim() == 2:
        r = r[None]
    if r.shape[-1] != grid * grid + 1:
        raise ValueError(f"rollout_class_map: {r.shape[-1]} tokens do not make 1 + {grid}x{grid}")
    return r[:, 0, 1:].reshape(-1, grid, grid)


def position_similarity(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Cosine similarity of each patch's position embedding with every other: (grid, grid, grid, grid).

    [i, j] is the similarity map of the patch at row i, column j (the paper's Figure 7, centre).
    pos_embed: (1, N + 1, D) or (N + 1, D) with the class position first, or (N, D) without it.
    """
    check_int("position_similarity", "grid", grid)
    p = pos_embed.detach().reshape(-1, pos_embed.shape[-1])
    if p.shape[0] == grid * grid + 1:
        p = p[1:]
    if p.shape[0] != grid * grid:
        raise ValueError(
            f"position_similarity: pos_embed has {p.shape[0]} rows, expected {grid * grid} "
            f"(or {grid * grid + 1} with the class position)"
        )
    p = F.normalize(p, dim=-1)
    return (p @ p.T).reshape(grid, grid, grid, grid)

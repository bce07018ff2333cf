"""The Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patches.

Notebook 06 builds it step by step; this module keeps the tested copy. The model is the
one of the paper (and of the seeds), written as four equations:

    z_0  = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          patches -> tokens, class token, positions
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                         pre-LN attention, residual
    z_l  = MLP(LN(z'_l)) + z'_l                               pre-LN MLP, residual
    y    = LN(z_L^0)                                          the class token's final state -> head

Besides the model: patchify / unpatchify, attention rollout (Abnar & Zuidema, 2020), the
window and shifted-window masks of Swin (Liu et al., 2021) as (N, N) boolean masks, MAE's
random patch masking (He et al., 2022), and the crop-and-flip augmentation used to train.

Concessions, admitted up front:

- A patch is flattened channel-first, (C, P, P) -> C*P*P, because that is the order of a
  `Conv2d` kernel: it makes "linear projection of flattened patches == strided convolution"
  an exact identity (`PatchEmbedding.to_conv`). MAE's code flattens (P, P, C); for the
  one-channel images of the notebook the two orders are the same.
- Attention goes through `course_utils.attention.MultiHeadAttention`'s projections. When no
  one asks for the attention weights (training), the block calls PyTorch's fused
  `F.scaled_dot_product_attention` on the same projections instead of materialising the
  (T, T) weights: the same function (the tests check it), a faster path.
- The classifier head is one Linear layer on y (the paper's fine-tuning head; its
  pre-training MLP head with a tanh layer is left out, as in `transformers`'
  `ViTForImageClassification`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention, merge_heads, split_heads

__all__ = ["patchify", "unpatchify", "PatchEmbedding", "ViTConfig", "VIT_PRESETS", "MLP", "EncoderBlock",
           "ViT", "count_parameters", "attention_rollout", "rollout_class_map", "position_similarity",
           "swin_window_mask", "random_patch_mask", "random_crop_flip"]


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _check_int(fn: str, name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {value}")


def _check_images(fn: str, images, patch_size: int) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{fn}: images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{fn}: images must have shape (B, C, H, W), got {tuple(images.shape)} "
                         "(a batch of grey images (B, H, W) needs `images[:, None]`)")
    _check_int(fn, "patch_size", patch_size)
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"{fn}: image height and width must be multiples of patch_size={patch_size}, got {H}x{W}")


# ---------------------------------------------------------------------------------------------
# an image as a sequence
# ---------------------------------------------------------------------------------------------
def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*P*P): non-overlapping P x P patches, row by row, each flattened.

    N = (H/P) * (W/P). Patch n sits at grid row n // (W/P), column n % (W/P) (row-major, the
    reading order). Within a patch the values are ordered (channel, row, column).
    The reshape splits H into (H/P, P) and W into (W/P, P); the permute brings the two
    grid axes in front of the three within-patch axes. Reshaping without it would cut
    rows of the image, not squares.

    >>> x = torch.arange(16.).view(1, 1, 4, 4)       # a 4x4 image with values 0..15
    >>> patchify(x, 2)[0]                            # 4 patches of 2x2, row-major
    tensor([[ 0.,  1.,  4.,  5.],
            [ 2.,  3.,  6.,  7.],
            [ 8.,  9., 12., 13.],
            [10., 11., 14., 15.]])
    """
    _check_images("patchify", images, patch_size)
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)       # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 1, 3, 5)                      # (B, gh, gw, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)


def unpatchify(patches: torch.Tensor, patch_size: int, image_size: int | tuple[int, int],
               channels: int = 1) -> torch.Tensor:
    """(B, N, C*P*P) -> (B, C, H, W): the inverse of `patchify` (used to draw masked images).

    >>> x = torch.randn(2, 3, 8, 12); bool((unpatchify(patchify(x, 4), 4, (8, 12), 3) == x).all())
    True
    """
    fn = "unpatchify"
    if not isinstance(patches, torch.Tensor) or patches.dim() != 3:
        raise ValueError(f"{fn}: patches must be a tensor of shape (B, N, C*P*P), got "
                         f"{tuple(patches.shape) if isinstance(patches, torch.Tensor) else type(patches).__name__}")
    _check_int(fn, "patch_size", patch_size)
    _check_int(fn, "channels", channels)
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"{fn}: image_size {H}x{W} is not a multiple of patch_size={P}")
    B, N, D = patches.shape
    gh, gw = H // P, W // P
    if N != gh * gw or D != channels * P * P:
        raise ValueError(f"{fn}: expected patches of shape (B, {gh * gw}, {channels * P * P}) for a {H}x{W} image "
                         f"with {channels} channel(s) and patch_size={P}, got {tuple(patches.shape)}")
    x = patches.reshape(B, gh, gw, channels, P, P)        # (B, gh, gw, C, P, P)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(B, channels, H, W)


class PatchEmbedding(nn.Module):
    """x_p E + b: a Linear layer on flattened patches, (B, C, H, W) -> (B, N, D).

    The same map is a Conv2d with kernel = stride = P (each output pixel sees exactly one
    patch): `to_conv()` returns that convolution, `from_conv()` goes the other way
    (that is how `transformers`' ViT stores E).
    """

    def __init__(self, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        for name, v in (("patch_size", patch_size), ("in_channels", in_channels), ("dim", dim)):
            _check_int("PatchEmbedding", name, v)
        self.patch_size, self.in_channels, self.dim = patch_size, in_channels, dim
        self.proj = nn.Linear(in_channels * patch_size * patch_size, dim)   # E (and a bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"PatchEmbedding: images must have shape (B, {self.in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        return self.proj(patchify(images, self.patch_size))                # (B, N, D)

    def to_conv(self) -> nn.Conv2d:
        """The equal strided convolution: weight (D, C*P*P) -> (D, C, P, P), same bias."""
        P, C, D = self.patch_size, self.in_channels, self.dim
        conv = nn.Conv2d(C, D, kernel_size=P, stride=P).to(self.proj.weight)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.reshape(D, C, P, P))
            conv.bias.copy_(self.proj.bias)
        return conv

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "PatchEmbedding":
        """A PatchEmbedding equal to a Conv2d whose kernel size equals its stride (square, no padding)."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"PatchEmbedding.from_conv: expected an nn.Conv2d, got {type(conv).__name__}")
        P = conv.kernel_size[0]
        if conv.kernel_size != (P, P) or conv.stride != (P, P) or conv.padding not in ((0, 0), "valid") \
                or conv.bias is None or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("PatchEmbedding.from_conv: conv must have a square kernel equal to its stride, "
                             f"no padding, groups=1 and a bias; got kernel {conv.kernel_size}, stride {conv.stride}, "
                             f"padding {conv.padding}")
        emb = cls(P, conv.in_channels, conv.out_channels).to(conv.weight)
        with torch.no_grad():
            emb.proj.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            emb.proj.bias.copy_(conv.bias)
        return emb


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class ViTConfig:
    """Every size of a ViT. The defaults are the small model trained on Fashion-MNIST in notebook 06."""

    image_size: int = 28
    patch_size: int = 7
    in_channels: int = 1
    n_classes: int = 10
    dim: int = 64            # D, the width of every token
    depth: int = 4           # L, encoder blocks
    n_heads: int = 4
    mlp_dim: int = 128       # hidden width of the MLP (4 D in the paper's models)
    dropout: float = 0.0
    layer_norm_eps: float = 1e-6

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "n_classes", "dim", "depth", "n_heads", "mlp_dim"):
            _check_int("ViTConfig", name, getattr(self, name))
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig: image_size={self.image_size} must be a multiple of "
                             f"patch_size={self.patch_size}")
        if self.dim % self.n_heads:
            raise ValueError(f"ViTConfig: dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ViTConfig: dropout must lie in [0, 1), got {self.dropout}")

    @property
    def grid(self) -> int:
        """Patches per side, H / P."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        """N = H W / P^2, the sequence length without the class token."""
        return self.grid ** 2

    def to_dict(self) -> dict:
        return asdict(self)


# The paper's Table 1 (and the seeds'), at 224 x 224 with 1000 classes.
VIT_PRESETS = {
    "ViT-Base/16": ViTConfig(224, 16, 3, 1000, dim=768, depth=12, n_heads=12, mlp_dim=3072),
    "ViT-Large/16": ViTConfig(224, 16, 3, 1000, dim=1024, depth=24, n_heads=16, mlp_dim=4096),
    "ViT-Huge/14": ViTConfig(224, 14, 3, 1000, dim=1280, depth=32, n_heads=16, mlp_dim=5120),
}


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """Linear(D, D_mlp) -> GELU -> Linear(D_mlp, D), applied to every token on its own."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # (B, T, D) -> (B, T, D)
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class EncoderBlock(nn.Module):
    """One pre-LN block: z' = MSA(LN(z)) + z ; z = MLP(LN(z')) + z'.

    forward(z (B, T, D), need_weights=False) -> (z (B, T, D), weights (B, h, T, T) or None).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.attn = MultiHeadAttention(cfg.dim, cfg.n_heads, dropout=cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg.dim, cfg.mlp_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def _fast_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The same MSA through PyTorch's fused kernel (no (T, T) weights kept)."""
        a, h = self.attn, self.attn.n_heads
        q, k, v = (split_heads(proj(x), h) for proj in (a.q_proj, a.k_proj, a.v_proj))  # (B, h, T, d_h)
        p = a.dropout if self.training else 0.0
        return a.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=p)))

    def forward(self, z: torch.Tensor, need_weights: bool = False):
        y = self.ln1(z)
        if need_weights:
            y, weights = self.attn(y, y, y)                 # (B, T, D), (B, h, T, T)
        else:
            y, weights = self._fast_attention(y), None
        z = self.drop(y) + z                                # z' = MSA(LN(z)) + z
        z = self.mlp(self.ln2(z)) + z                       # z  = MLP(LN(z')) + z'
        return z, weights


class ViT(nn.Module):
    """The Vision Transformer: patch embedding, [class] token, learned positions, L blocks, LN, head.

    forward(images (B, C, H, W), return_attention=False)
      -> logits (B, n_classes), or (logits, [weights (B, h, T, T) per layer]) with T = N + 1.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        if not isinstance(cfg, ViTConfig):
            raise TypeError(f"ViT: cfg must be a ViTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.patch_embed = PatchEmbedding(cfg.patch_size, cfg.in_channels, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))                  # x_class
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.dim))  # E_pos, row 0 = class
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) for the embeddings and Linear weights, zero biases (as in the paper's code)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """z_0 = [x_class; x_p E] + E_pos: (B, C, H, W) -> (B, N + 1, D)."""
        x = self.patch_embed(images)                           # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)        # (B, 1, D)
        return self.drop(torch.cat([cls, x], dim=1) + self.pos_embed)

    def features(self, images: torch.Tensor, return_attention: bool = False):
        """y = LN(z_L^0), the class token's final state (B, D) (and the per-layer attention weights)."""
        z, maps = self.embed(images), []
        for block in self.blocks:
            z, w = block(z, need_weights=return_attention)
            maps.append(w)
        y = self.norm(z)[:, 0]                                 # LN of the class token only
        return (y, maps) if return_attention else y

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            y, maps = self.features(images, True)
            return self.head(y), maps
        return self.head(self.features(images))

    @classmethod
    def from_transformers(cls, hf_model) -> "ViT":
        """Our ViT with the weights of a `transformers` `ViTForImageClassification` (transformers 5.x names)."""
        hf_cfg = hf_model.config
        if getattr(hf_cfg, "hidden_act", "gelu") != "gelu" or not getattr(hf_cfg, "qkv_bias", True):
            raise ValueError("from_transformers: only hidden_act='gelu' and qkv_bias=True are supported")
        image_size = hf_cfg.image_size if isinstance(hf_cfg.image_size, int) else hf_cfg.image_size[0]
        patch = hf_cfg.patch_size if isinstance(hf_cfg.patch_size, int) else hf_cfg.patch_size[0]
        cfg = ViTConfig(image_size, patch, hf_cfg.num_channels, hf_cfg.num_labels, dim=hf_cfg.hidden_size,
                        depth=hf_cfg.num_hidden_layers, n_heads=hf_cfg.num_attention_heads,
                        mlp_dim=hf_cfg.intermediate_size, layer_norm_eps=hf_cfg.layer_norm_eps)
        ref = hf_model.classifier.weight
        model = cls(cfg).to(dtype=ref.dtype, device=ref.device)
        sd = {k: v.detach() for k, v in hf_model.state_dict().items()}
        ours = {"cls_token": sd["vit.embeddings.cls_token"], "pos_embed": sd["vit.embeddings.position_embeddings"],
                "patch_embed.proj.weight": sd["vit.embeddings.patch_embeddings.projection.weight"].flatten(1),
                "patch_embed.proj.bias": sd["vit.embeddings.patch_embeddings.projection.bias"],
                "norm.weight": sd["vit.layernorm.weight"], "norm.bias": sd["vit.layernorm.bias"],
                "head.weight": sd["classifier.weight"], "head.bias": sd["classifier.bias"]}
        names = {"ln1": "layernorm_before", "ln2": "layernorm_after", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
                 "attn.q_proj": "attention.q_proj", "attn.k_proj": "attention.k_proj",
                 "attn.v_proj": "attention.v_proj", "attn.out_proj": "attention.o_proj"}
        for i in range(cfg.depth):
            for mine, theirs in names.items():
                for p in ("weight", "bias"):
                    ours[f"blocks.{i}.{mine}.{p}"] = sd[f"vit.layers.{i}.{theirs}.{p}"]
        model.load_state_dict(ours)
        return model.train(hf_model.training)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; works on the "meta" device, where nothing is allocated."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters: model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------
# looking inside: attention rollout and position embeddings
# ---------------------------------------------------------------------------------------------
def attention_rollout(attentions: Sequence[torch.Tensor], residual: float = 0.5,
                      head_fusion: str = "mean") -> torch.Tensor:
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
        raise TypeError(f"{fn}: attentions must be a non-empty list of (B, h, T, T) tensors, one per layer, "
                        f"got {type(attentions).__name__}")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"{fn}: residual must lie in [0, 1], got {residual}")
    if head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"{fn}: head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
    shape = attentions[0].shape
    for i, a in enumerate(attentions):
        if not isinstance(a, torch.Tensor) or a.dim() not in (3, 4) or a.shape != shape or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"{fn}: attentions[{i}] must be (B, h, T, T) or (h, T, T) like attentions[0] "
                             f"{tuple(shape)}, got {tuple(a.shape) if isinstance(a, torch.Tensor) else type(a)}")
    T = shape[-1]
    eye = torch.eye(T, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = None
    for a in attentions:
        fused = {"mean": a.mean(dim=-3), "max": a.amax(dim=-3), "min": a.amin(dim=-3)}[head_fusion]  # (B, T, T)
        a_hat = (1 - residual) * fused + residual * eye                  # attention + the skip connection
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)                  # rows are distributions again
        rollout = a_hat if rollout is None else a_hat @ rollout          # later layers multiply from the left
    return rollout


def rollout_class_map(attentions: Sequence[torch.Tensor], grid: int, **kwargs) -> torch.Tensor:
    """The [class] row of the rollout over the patches, as an image: (B, grid, grid)."""
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
    p = pos_embed.detach().reshape(-1, pos_embed.shape[-1])
    if p.shape[0] == grid * grid + 1:
        p = p[1:]
    if p.shape[0] != grid * grid:
        raise ValueError(f"position_similarity: pos_embed has {p.shape[0]} rows, expected {grid * grid} "
                         f"(or {grid * grid + 1} with the class position)")
    p = F.normalize(p, dim=-1)
    return (p @ p.T).reshape(grid, grid, grid, grid)


# ---------------------------------------------------------------------------------------------
# beyond: Swin's windows and MAE's masking
# ---------------------------------------------------------------------------------------------
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
    _check_int(fn, "grid height", H)
    _check_int(fn, "grid width", W)
    _check_int(fn, "window", window)
    _check_int(fn, "shift", shift, low=0)
    if H % window or W % window:
        raise ValueError(f"{fn}: the grid {H}x{W} must be a multiple of window={window}")
    if shift >= window:
        raise ValueError(f"{fn}: shift must be smaller than window={window}, got {shift}")

    def labels(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rolled = (torch.arange(n) - shift) % n                     # position after torch.roll(-shift)
        win = rolled // window                                      # which window, in the rolled frame
        region = (rolled >= n - window).long() + (rolled >= n - shift).long() if shift else torch.zeros(n, dtype=torch.long)
        return win, region                                          # Swin's three regions per axis

    (wh, rh), (ww, rw) = labels(H), labels(W)
    win = (wh[:, None] * (W // window) + ww[None, :]).reshape(-1)  # (N,) window id per token
    reg = (rh[:, None] * 3 + rw[None, :]).reshape(-1)              # (N,) region id per token
    return (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])


def random_patch_mask(batch: int, n_patches: int, mask_ratio: float = 0.75,
                      generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None):
    """MAE's random masking: keep a random int(N (1 - ratio)) patches of every image, hide the rest.

    Like MAE, shuffle by sorting uniform noise, keep the first ones. Returns
    `ids_keep` (B, N_keep), the indices of the visible patches (in shuffled order), and
    `mask` (B, N) float with 1 = hidden, 0 = visible (MAE's convention for the loss).
    Pass `noise` (B, N) to reproduce another implementation exactly.
    """
    fn = "random_patch_mask"
    _check_int(fn, "batch", batch)
    _check_int(fn, "n_patches", n_patches)
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"{fn}: mask_ratio must lie in [0, 1), got {mask_ratio}")
    if noise is None:
        noise = torch.rand(batch, n_patches, generator=generator)
    elif tuple(noise.shape) != (batch, n_patches):
        raise ValueError(f"{fn}: noise must have shape ({batch}, {n_patches}), got {tuple(noise.shape)}")
    n_keep = int(n_patches * (1 - mask_ratio))
    ids_shuffle = noise.argsort(dim=1)                               # (B, N) a random permutation per row
    ids_keep = ids_shuffle[:, :n_keep]                               # (B, N_keep)
    mask = torch.ones(batch, n_patches, device=noise.device)
    mask.scatter_(1, ids_keep, 0.0)                                  # 0 = visible
    return ids_keep, mask


# ---------------------------------------------------------------------------------------------
# data augmentation (no torchvision)
# ---------------------------------------------------------------------------------------------
def random_crop_flip(images: torch.Tensor, pad: int = 2, flip: bool = True,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random shift by up to `pad` pixels (crop of the zero-padded image) and a random left-right flip.

    images (B, C, H, W) -> (B, C, H, W), a different crop and flip per image, all on the tensor's
    device. The crop is done by gathering with per-image offsets: no Python loop over images.
    """
    fn = "random_crop_flip"
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"{fn}: images must be a tensor of shape (B, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    _check_int(fn, "pad", pad, low=0)
    B, C, H, W = images.shape
    dev = images.device
    out = images
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))                              # (B, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(dev)
        rows = (dy[:, None] + torch.arange(H, device=dev))[:, None, :, None].expand(B, C, H, W + 2 * pad)
        out = padded.gather(2, rows)                                              # (B, C, H, W+2p)
        cols = (dx[:, None] + torch.arange(W, device=dev))[:, None, None, :].expand(B, C, H, W)
        out = out.gather(3, cols)                                                 # (B, C, H, W)
    if flip:
        flipped = torch.rand(B, generator=generator).to(dev) < 0.5
        out = torch.where(flipped[:, None, None, None], out.flip(-1), out)
    return out

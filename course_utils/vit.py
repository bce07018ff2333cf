"""The Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patches.

Notebook 06 builds it step by step; this module keeps the tested copy. The model is the
one of the paper, written as four equations:

    z_0  = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          patches -> tokens, class token, positions
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                         pre-LN attention, residual
    z_l  = MLP(LN(z'_l)) + z'_l                               pre-LN MLP, residual
    y    = LN(z_L^0)                                          the class token's final state -> head

Besides the model: patchify / unpatchify, the patch embedding and its convolution twin, and
the weight import from `transformers`. Looking inside a trained ViT (attention rollout,
position similarity) is `course_utils.vit_maps`; Swin's windows and MAE's masking are
`course_utils.patch_masks`; the crop-and-flip augmentation is `course_utils.augment`.

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

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention, merge_heads, split_heads
from course_utils.checks import check_fields, check_int, check_number, check_tensor

__all__ = [
    "patchify",
    "unpatchify",
    "PatchEmbedding",
    "ViTConfig",
    "VIT_PRESETS",
    "MLP",
    "EncoderBlock",
    "ViT",
    "hf_vit_config",
]


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _check_images(fn: str, images, patch_size: int) -> torch.Tensor:
    """A (B, C, H, W) tensor whose height and width are multiples of patch_size (the image-specific check)."""
    check_tensor(fn, "images", images, shape="(B, C, H, W)")
    if images.dim() != 4:
        raise ValueError(
            f"{fn}: images must have shape (B, C, H, W), got {tuple(images.shape)} "
            "(a batch of grey images (B, H, W) needs `images[:, None]`)"
        )
    check_int(fn, "patch_size", patch_size)
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"{fn}: image height and width must be multiples of patch_size={patch_size}, got {H}x{W}")
    return images


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
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)


def unpatchify(
    patches: torch.Tensor, patch_size: int, image_size: int | tuple[int, int], channels: int = 1
) -> torch.Tensor:
    """(B, N, C*P*P) -> (B, C, H, W): the inverse of `patchify` (used to draw masked images).

    >>> x = torch.randn(2, 3, 8, 12); bool((unpatchify(patchify(x, 4), 4, (8, 12), 3) == x).all())
    True
    """
    fn = "unpatchify"
    check_tensor(fn, "patches", patches, dim=3, shape="(B, N, C*P*P)")
    check_int(fn, "patch_size", patch_size)
    check_int(fn, "channels", channels)
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"{fn}: image_size {H}x{W} is not a multiple of patch_size={P}")
    B, N, D = patches.shape
    gh, gw = H // P, W // P
    if N != gh * gw or D != channels * P * P:
        raise ValueError(
            f"{fn}: expected patches of shape (B, {gh * gw}, {channels * P * P}) for a {H}x{W} image "
            f"with {channels} channel(s) and patch_size={P}, got {tuple(patches.shape)}"
        )
    x = patches.reshape(B, gh, gw, channels, P, P)  # (B, gh, gw, C, P, P)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(B, channels, H, W)


class PatchEmbedding(nn.Module):
    """x_p E + b: a Linear layer on flattened patches, (B, C, H, W) -> (B, N, D).

    The same map is a Conv2d with kernel = stride = P (each output pixel sees exactly one
    patch): `to_conv()` returns that convolution, `from_conv()` goes the other way
    (that is how `transformers`' ViT stores E).
    """

    def __init__(self, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        for name, v in (("patch_size", patch_size), ("in_channels", in_channels), ("d_model", d_model)):
            check_int("PatchEmbedding", name, v)
        self.patch_size, self.in_channels, self.d_model = patch_size, in_channels, d_model
        self.proj = nn.Linear(in_channels * patch_size * patch_size, d_model)  # E (and a bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchEmbedding: images must have shape (B, {self.in_channels}, H, W), got {tuple(images.shape)}"
            )
        return self.proj(patchify(images, self.patch_size))  # (B, N, D)

    def to_conv(self) -> nn.Conv2d:
        """The equal strided convolution: weight (D, C*P*P) -> (D, C, P, P), same bias."""
        P, C, D = self.patch_size, self.in_channels, self.d_model
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
        if (
            conv.kernel_size != (P, P)
            or conv.stride != (P, P)
            or conv.padding not in ((0, 0), "valid")
            or conv.bias is None
            or conv.groups != 1
            or conv.dilation != (1, 1)
        ):
            raise ValueError(
                "PatchEmbedding.from_conv: conv must have a square kernel equal to its stride, "
                f"no padding, groups=1 and a bias; got kernel {conv.kernel_size}, stride {conv.stride}, "
                f"padding {conv.padding}"
            )
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
    d_model: int = 64  # D, the width of every token
    n_layers: int = 4  # L, encoder blocks
    n_heads: int = 4
    d_ff: int = 128  # hidden width of the MLP (4 D in the paper's models)
    dropout: float = 0.0
    layer_norm_eps: float = 1e-6

    def __post_init__(self):
        check_fields(
            "ViTConfig",
            self,
            ("image_size", "patch_size", "in_channels", "n_classes", "d_model", "n_layers", "n_heads", "d_ff"),
        )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"ViTConfig: image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"ViTConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        check_number("ViTConfig", "dropout", self.dropout, low=0.0, high=1.0, high_open=True)

    @property
    def grid(self) -> int:
        """Patches per side, H / P."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        """N = H W / P^2, the sequence length without the class token.

        >>> ViTConfig(image_size=28, patch_size=7).n_patches       # a 4 x 4 grid
        16
        """
        return self.grid**2

    def to_dict(self) -> dict:
        return asdict(self)


# The paper's Table 1 (Dosovitskiy et al., 2021), at 224 x 224 with 1000 classes.
VIT_PRESETS = {
    "ViT-Base/16": ViTConfig(224, 16, 3, 1000, d_model=768, n_layers=12, n_heads=12, d_ff=3072),
    "ViT-Large/16": ViTConfig(224, 16, 3, 1000, d_model=1024, n_layers=24, n_heads=16, d_ff=4096),
    "ViT-Huge/14": ViTConfig(224, 14, 3, 1000, d_model=1280, n_layers=32, n_heads=16, d_ff=5120),
}


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """Linear(D, d_ff) -> GELU -> Linear(d_ff, D), applied to every token on its own."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(config.d_model, config.d_ff), nn.Linear(config.d_ff, config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class EncoderBlock(nn.Module):
    """One pre-LN block: z' = MSA(LN(z)) + z ; z = MLP(LN(z')) + z'.

    forward(z (B, T, D), return_attention=False) -> (z (B, T, D), weights (B, h, T, T) or None).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout)
        self.ln2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def _fast_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The same MSA through PyTorch's fused kernel (no (T, T) weights kept)."""
        a, h = self.attn, self.attn.n_heads
        q, k, v = (split_heads(proj(x), h) for proj in (a.q_proj, a.k_proj, a.v_proj))  # (B, h, T, d_h)
        p = a.dropout if self.training else 0.0
        return a.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=p)))

    def forward(self, z: torch.Tensor, return_attention: bool = False):
        y = self.ln1(z)
        if return_attention:
            y, weights = self.attn(y, y, y)  # (B, T, D), (B, h, T, T)
        else:
            y, weights = self._fast_attention(y), None
        z = self.drop(y) + z  # z' = MSA(LN(z)) + z
        z = self.mlp(self.ln2(z)) + z  # z  = MLP(LN(z')) + z'
        return z, weights


class ViT(nn.Module):
    """The Vision Transformer: patch embedding, [class] token, learned positions, L blocks, LN, head.

    forward(images (B, C, H, W), return_attention=False)
      -> logits (B, n_classes), or (logits, [weights (B, h, T, T) per layer]) with T = N + 1.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"ViT: config must be a ViTConfig, got {type(config).__name__}")
        self.config = config
        D = config.d_model
        self.patch_embed = PatchEmbedding(config.patch_size, config.in_channels, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))  # x_class
        self.pos_embed = nn.Parameter(torch.zeros(1, config.n_patches + 1, D))  # E_pos, row 0 = class
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.head = nn.Linear(D, config.n_classes)
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
        x = self.patch_embed(images)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return self.drop(torch.cat([cls, x], dim=1) + self.pos_embed)

    def features(self, images: torch.Tensor, return_attention: bool = False):
        """y = LN(z_L^0), the class token's final state (B, D) (and the per-layer attention weights)."""
        z, maps = self.embed(images), []
        for block in self.blocks:
            z, w = block(z, return_attention=return_attention)
            maps.append(w)
        y = self.norm(z)[:, 0]  # LN of the class token only
        return (y, maps) if return_attention else y

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            y, maps = self.features(images, True)
            return self.head(y), maps
        return self.head(self.features(images))

    @classmethod
    def from_transformers(cls, hf_model) -> "ViT":
        """Our ViT with the weights of a `transformers` `ViTForImageClassification` (transformers 5.x names)."""
        hf_config = hf_model.config
        if getattr(hf_config, "hidden_act", "gelu") != "gelu" or not getattr(hf_config, "qkv_bias", True):
            raise ValueError("from_transformers: only hidden_act='gelu' and qkv_bias=True are supported")
        image_size = hf_config.image_size if isinstance(hf_config.image_size, int) else hf_config.image_size[0]
        patch = hf_config.patch_size if isinstance(hf_config.patch_size, int) else hf_config.patch_size[0]
        config = ViTConfig(
            image_size,
            patch,
            hf_config.num_channels,
            hf_config.num_labels,
            d_model=hf_config.hidden_size,
            n_layers=hf_config.num_hidden_layers,
            n_heads=hf_config.num_attention_heads,
            d_ff=hf_config.intermediate_size,
            layer_norm_eps=hf_config.layer_norm_eps,
        )
        ref = hf_model.classifier.weight
        model = cls(config).to(dtype=ref.dtype, device=ref.device)
        sd = {k: v.detach() for k, v in hf_model.state_dict().items()}
        ours = {
            "cls_token": sd["vit.embeddings.cls_token"],
            "pos_embed": sd["vit.embeddings.position_embeddings"],
            "patch_embed.proj.weight": sd["vit.embeddings.patch_embeddings.projection.weight"].flatten(1),
            "patch_embed.proj.bias": sd["vit.embeddings.patch_embeddings.projection.bias"],
            "norm.weight": sd["vit.layernorm.weight"],
            "norm.bias": sd["vit.layernorm.bias"],
            "head.weight": sd["classifier.weight"],
            "head.bias": sd["classifier.bias"],
        }
        names = {
            "ln1": "layernorm_before",
            "ln2": "layernorm_after",
            "mlp.fc1": "mlp.fc1",
            "mlp.fc2": "mlp.fc2",
            "attn.q_proj": "attention.q_proj",
            "attn.k_proj": "attention.k_proj",
            "attn.v_proj": "attention.v_proj",
            "attn.out_proj": "attention.o_proj",
        }
        for i in range(config.n_layers):
            for mine, theirs in names.items():
                for p in ("weight", "bias"):
                    ours[f"blocks.{i}.{mine}.{p}"] = sd[f"vit.layers.{i}.{theirs}.{p}"]
        model.load_state_dict(ours)
        return model.train(hf_model.training)


# ---------------------------------------------------------------------------------------------
# our names -> transformers' names, in one place
# ---------------------------------------------------------------------------------------------
def hf_vit_config(config: ViTConfig, **overrides):
    """The `transformers.ViTConfig` of the same model (d_model -> hidden_size, n_layers -> num_hidden_layers, ...).

    `overrides` go to transformers as they are (e.g. attn_implementation="eager" to get attention weights).
    `ViT.from_transformers` reads the same names back.
    """
    import transformers  # optional and heavy: only the comparisons with transformers need it

    if not isinstance(config, ViTConfig):
        raise TypeError(f"hf_vit_config: config must be a ViTConfig, got {type(config).__name__}")
    names = dict(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.in_channels,
        hidden_size=config.d_model,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff,
        num_labels=config.n_classes,
        layer_norm_eps=config.layer_norm_eps,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        hidden_act="gelu",
        qkv_bias=True,
    )
    return transformers.ViTConfig(**{**names, **overrides})

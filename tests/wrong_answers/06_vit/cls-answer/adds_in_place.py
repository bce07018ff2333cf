# expect: in place
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    patch_tokens += pos_embed[:, 1:]  # changes the caller's tensor
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1) + pos_embed[:, :1]
    return torch.cat([cls, patch_tokens], dim=1)

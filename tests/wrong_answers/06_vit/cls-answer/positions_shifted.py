# expect: shifted by one
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    N = patch_tokens.shape[1]
    x = patch_tokens + pos_embed[:, :N]  # the first N rows, class row included
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1) + pos_embed[:, N:]
    return torch.cat([cls, x], dim=1)

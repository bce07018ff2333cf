# expect: the positions were added before the class token was prepended
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    x = patch_tokens + pos_embed[:, 1:]  # positions first ...
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)
    return torch.cat([cls, x], dim=1)  # ... so the class token gets none

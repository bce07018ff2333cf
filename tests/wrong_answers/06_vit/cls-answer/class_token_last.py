# expect: the class token is at the end
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)
    return torch.cat([patch_tokens, cls], dim=1) + pos_embed

# expect: has shape
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    return torch.cat([cls_token, patch_tokens[:1]], dim=1) + pos_embed  # only the first image

# expect: raised RuntimeError
import torch


def add_class_and_positions(patch_tokens, cls_token, pos_embed):
    return torch.cat([cls_token, patch_tokens], dim=1) + pos_embed  # cls_token not expanded to the batch

# expect: there is no smoothing
import torch.nn.functional as F


def smoothed_loss(logits, target, eps, pad_id):
    return F.cross_entropy(logits, target, ignore_index=pad_id)

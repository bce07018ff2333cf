# expect: in place
import torch


def rollout(attentions):
    result = None
    for a in attentions:
        a += torch.eye(a.shape[-1])  # the same after the mean, but it changes the caller's weights
        a = a.mean(dim=1)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result

# expect: the layers are multiplied in the wrong order
import torch


def rollout(attentions):
    result = None
    for a in attentions:
        a = a.mean(dim=1) + torch.eye(a.shape[-1])
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else result @ a
    return result

# expect: the heads are combined with a max
import torch


def rollout(attentions):
    result = None
    for a in attentions:
        a = a.amax(dim=1) + torch.eye(a.shape[-1])
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result

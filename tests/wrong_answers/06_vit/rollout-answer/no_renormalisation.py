# expect: the rows are not renormalised
import torch


def rollout(attentions):
    result = None
    for a in attentions:
        a = a.mean(dim=1) + torch.eye(a.shape[-1])
        result = a if result is None else a @ result
    return result

# expect: expected torch.float64
import torch


def rollout(attentions):
    result = None
    for a in attentions:
        a = a.mean(dim=1).float() + torch.eye(a.shape[-1])  # float32 whatever the weights were
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result

# expect: only the last layer is used
import torch


def rollout(attentions):
    a = attentions[-1].mean(dim=1) + torch.eye(attentions[-1].shape[-1])
    return a / a.sum(dim=-1, keepdim=True)

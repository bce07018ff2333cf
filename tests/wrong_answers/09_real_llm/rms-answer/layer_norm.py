# expect: a LayerNorm
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    x = x - x.mean(dim=-1, keepdim=True)
    return weight * x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)

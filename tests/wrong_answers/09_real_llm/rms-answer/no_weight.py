# expect: the learned weight is not applied
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)

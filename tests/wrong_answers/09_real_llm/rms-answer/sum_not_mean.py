# expect: the sum of squares instead of their mean
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    return weight * x / torch.sqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)

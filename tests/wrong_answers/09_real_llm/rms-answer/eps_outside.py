# expect: eps added outside the square root
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    return weight * x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)

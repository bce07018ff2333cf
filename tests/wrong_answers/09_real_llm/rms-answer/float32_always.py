# expect: dtype
def rms_norm(x, weight, eps=1e-5):
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight; same shape as x."""
    x = x.float()
    return weight.float() * x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)

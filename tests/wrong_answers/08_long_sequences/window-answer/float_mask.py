# expect: should return a boolean tensor
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    return torch.ones(n, n).triu(-window).tril(window)

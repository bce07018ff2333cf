# expect: the window is one key too wide on each side
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    return torch.ones(n, n).triu(-window - 1).tril(window + 1).bool()

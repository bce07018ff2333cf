# expect: a window that only looks ahead
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    pos = torch.arange(n)
    diff = pos[None, :] - pos[:, None]
    return (diff >= 0) & (diff <= window)

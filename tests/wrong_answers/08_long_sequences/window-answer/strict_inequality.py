# expect: an off-by-one: the window must include keys exactly `window` away
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    pos = torch.arange(n)
    return (pos[:, None] - pos[None, :]).abs() < window

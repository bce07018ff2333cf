# expect: should return a boolean tensor
def window_mask(n: int, window: int) -> torch.Tensor:
    """(n, n) bool, True where |i - j| <= window."""
    return [[abs(i - j) <= window for j in range(n)] for i in range(n)]

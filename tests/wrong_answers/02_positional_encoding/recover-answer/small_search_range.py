# expect: recover_offset is not right (on a large positive offset
def recover_offset(pe_a, pe_b):
    # brute force over a range that is too small for the stated |k| < 5000
    d = pe_a.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    best, best_err = 0, float("inf")
    for k in range(-1000, 1001):
        c, s = torch.cos(k * w), torch.sin(k * w)
        sa, ca = pe_a[0::2], pe_a[1::2]
        err = ((c * sa + s * ca - pe_b[0::2]) ** 2 + (-s * sa + c * ca - pe_b[1::2]) ** 2).sum().item()
        if err < best_err:
            best, best_err = k, err
    return best

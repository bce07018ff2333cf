# expect: the sign is flipped
def recover_offset(pe_a, pe_b):
    d = pe_a.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle_a = torch.atan2(pe_a[0::2], pe_a[1::2])
    angle_b = torch.atan2(pe_b[0::2], pe_b[1::2])
    delta = torch.remainder(angle_a - angle_b + math.pi, 2 * math.pi) - math.pi
    return int(torch.round(delta[-1] / w[-1]).item())

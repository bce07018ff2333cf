# expect: c is upside down
def quantize_absmax(x):
    c = x.abs().max() / 127.0
    return torch.round(x / c).to(torch.int8), c


def dequantize_absmax(q, c):
    return q.float() * c

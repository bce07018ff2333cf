# expect: has shape (1,), expected ()
def quantize_absmax(x):
    c = 127.0 / x.abs().amax(dim=-1, keepdim=True)  # one constant per row, not one for the tensor
    return torch.round(c * x).to(torch.int8), c


def dequantize_absmax(q, c):
    return q.float() / c

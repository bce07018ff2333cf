# expect: the maximum of the whole tensor is subtracted
def softmax(x):
    e = (x - x.max()).exp()
    return e / e.sum(dim=-1, keepdim=True)

# expect: not numerically stable
def softmax(x):
    e = x.exp()
    return e / e.sum(dim=-1, keepdim=True)

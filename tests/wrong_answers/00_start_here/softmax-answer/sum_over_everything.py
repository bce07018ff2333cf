# expect: normalised over the whole tensor
def softmax(x):
    e = x.exp()
    return e / e.sum()

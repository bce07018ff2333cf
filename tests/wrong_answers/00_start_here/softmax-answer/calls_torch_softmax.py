# expect: not allowed here
def softmax(x):
    return x.softmax(dim=-1)

# expect: the product is in the wrong order
def merge_weights(W, A, B, alpha, r):
    return W + (alpha / r) * (A @ B)

# expect: the product is transposed
def merge_weights(W, A, B, alpha, r):
    return W + (alpha / r) * (A.T @ B.T)

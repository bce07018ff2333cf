# expect: multiplied by alpha instead of alpha / r
def merge_weights(W, A, B, alpha, r):
    return W + alpha * (B @ A)

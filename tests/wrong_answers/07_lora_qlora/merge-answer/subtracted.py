# expect: the offset is subtracted
def merge_weights(W, A, B, alpha, r):
    return W - (alpha / r) * (B @ A)

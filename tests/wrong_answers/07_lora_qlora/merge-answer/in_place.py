# expect: in place
def merge_weights(W, A, B, alpha, r):
    W += (alpha / r) * (B @ A)  # changes the caller's W
    return W

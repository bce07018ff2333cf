# expect: merged without the scaling
def merge_weights(W, A, B, alpha, r):
    return W + B @ A

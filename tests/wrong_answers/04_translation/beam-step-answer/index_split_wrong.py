# expect: the flat index was split the wrong way
def beam_step(scores, log_probs, k):
    K, V = log_probs.shape
    best, flat = (scores[:, None] + log_probs).reshape(-1).topk(k)
    return best, flat % V, flat // V

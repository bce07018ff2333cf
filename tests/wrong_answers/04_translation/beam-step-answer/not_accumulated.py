# expect: the scores are not accumulated
def beam_step(scores, log_probs, k):
    K, V = log_probs.shape
    best, flat = log_probs.reshape(-1).topk(k)
    return best, flat // V, flat % V

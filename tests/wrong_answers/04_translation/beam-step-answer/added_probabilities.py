# expect: stay in log space
def beam_step(scores, log_probs, k):
    K, V = log_probs.shape
    best, flat = (scores[:, None] + log_probs.exp()).reshape(-1).topk(k)
    return best, flat // V, flat % V

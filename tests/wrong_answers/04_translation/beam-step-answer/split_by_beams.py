# expect: computed with K instead of V
def beam_step(scores, log_probs, k):
    K, V = log_probs.shape
    best, flat = (scores[:, None] + log_probs).reshape(-1).topk(k)
    return best, flat // K, flat % K  # right only when K == V

# expect: has dtype torch.float32, expected torch.int64
def beam_step(scores, log_probs, k):
    K, V = log_probs.shape
    best, flat = (scores[:, None] + log_probs).reshape(-1).topk(k)
    parent = (flat / V).floor()  # true division: a float tensor holding whole numbers
    return best, parent, flat - parent * V

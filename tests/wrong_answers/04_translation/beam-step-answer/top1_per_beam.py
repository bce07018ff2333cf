# expect: only the best token of each beam
def beam_step(scores, log_probs, k):
    total = scores[:, None] + log_probs
    best_per_beam, tokens = total.max(dim=1)
    best, parent = best_per_beam.topk(k)
    return best, parent, tokens[parent]

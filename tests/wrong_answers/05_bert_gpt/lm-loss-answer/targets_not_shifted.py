# expect: the targets are not shifted
def lm_loss(logits, ids):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))

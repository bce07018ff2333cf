# expect: contains NaN or inf (on rows of very different scales)
def smoothed_loss(logits, target, eps, pad_id):
    N, V = logits.shape
    logp = logits.softmax(dim=-1).log()  # log(0) = -inf where a probability underflows
    q = torch.full_like(logp, eps / (V - 1))
    q[:, pad_id] = 0.0
    q[torch.arange(N), target] += 1 - eps
    return -(q * logp).sum(dim=-1)[target != pad_id].mean()

# expect: contains NaN or inf
def lm_loss(logits, ids):
    probs = torch.softmax(logits[:, :-1], dim=-1)  # (B, T-1, V)
    picked = probs.gather(-1, ids[:, 1:, None])  # the probability of each next token
    return -torch.log(picked).mean()

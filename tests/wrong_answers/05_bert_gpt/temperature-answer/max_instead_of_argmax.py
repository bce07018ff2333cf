# expect: the largest logit instead of its index
def temperature_probs(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def sample_with_temperature(logits, temperature, generator=None):
    if temperature == 0:
        return logits.max(dim=-1, keepdim=True).values
    return torch.multinomial(temperature_probs(logits, temperature), 1, generator=generator)

# expect: temperature 0 means greedy
def temperature_probs(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def sample_with_temperature(logits, temperature, generator=None):
    return torch.multinomial(temperature_probs(logits, temperature), 1, generator=generator)

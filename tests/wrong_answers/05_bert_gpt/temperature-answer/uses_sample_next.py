# expect: not allowed here
def temperature_probs(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def sample_with_temperature(logits, temperature, generator=None):
    return sample_next(logits, temperature=temperature, generator=generator)

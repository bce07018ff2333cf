# expect: temperature multiplied instead of divided
def temperature_probs(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def sample_with_temperature(logits, temperature, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(temperature_probs(logits, temperature), 1, generator=generator)

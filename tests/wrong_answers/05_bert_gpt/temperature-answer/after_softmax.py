# expect: temperature applied after the softmax
def temperature_probs(logits, temperature):
    return torch.softmax(logits, dim=-1) / temperature


def sample_with_temperature(logits, temperature, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    p = torch.softmax(logits, dim=-1)
    return torch.multinomial(p, 1, generator=generator)

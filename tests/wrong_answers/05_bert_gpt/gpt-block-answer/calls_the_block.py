# expect: not allowed here
def gpt_block(x, block):
    return block(x)


def gpt_logits(idx, model):
    wte, wpe = model.transformer.wte, model.transformer.wpe
    x = wte(idx) + wpe(torch.arange(idx.shape[1]))
    for block in model.transformer.h:
        x = gpt_block(x, block)
    x = model.transformer.ln_f(x)
    return x @ wte.weight.T

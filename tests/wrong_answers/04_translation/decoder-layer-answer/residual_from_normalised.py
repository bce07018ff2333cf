# expect: add its output to x itself
def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    pre = layer.norm_first
    norms = (layer.norm1, layer.norm2, layer.norm3)
    weights = []
    for i, norm in enumerate(norms):
        h = norm(x) if pre else x  # pre-LN: the residual starts from h, not from x
        if i == 0:
            y, w = layer.self_attn(h, h, h, self_mask)
            weights.append(w)
        elif i == 1:
            y, w = layer.cross_attn(h, memory, memory, cross_mask)
            weights.append(w)
        else:
            y = layer.ff(h)
        x = h + layer.dropout(y)
        if not pre:
            x = norm(x)
    return x, weights[0], weights[1]

# expect: the encoder's output was normalised too
def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    pre = layer.norm_first
    h = layer.norm1(x) if pre else x
    a, w_self = layer.self_attn(h, h, h, self_mask)
    x = x + layer.dropout(a)
    x = x if pre else layer.norm1(x)
    if pre:
        h, kv = layer.norm2(x), layer.norm2(memory)  # normalises the encoder's output as well
    else:
        h, kv = x, memory
    a, w_cross = layer.cross_attn(h, kv, kv, cross_mask)
    x = x + layer.dropout(a)
    x = x if pre else layer.norm2(x)
    h = layer.norm3(x) if pre else x
    x = x + layer.dropout(layer.ff(h))
    x = x if pre else layer.norm3(x)
    return x, w_self, w_cross

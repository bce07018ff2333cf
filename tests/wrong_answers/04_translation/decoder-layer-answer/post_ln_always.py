# expect: a pre-LN layer is the identity
def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    # the paper's order for every layer: layer.norm_first is never read
    a, w_self = layer.self_attn(x, x, x, self_mask)
    x = layer.norm1(x + layer.dropout(a))
    a, w_cross = layer.cross_attn(x, memory, memory, cross_mask)
    x = layer.norm2(x + layer.dropout(a))
    x = layer.norm3(x + layer.dropout(layer.ff(x)))
    return x, w_self, w_cross

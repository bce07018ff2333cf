# expect: the cross-attention comes before the masked self-attention
def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    pre = layer.norm_first
    h = layer.norm2(x) if pre else x
    a, w_cross = layer.cross_attn(h, memory, memory, cross_mask)
    x = x + layer.dropout(a)
    x = x if pre else layer.norm2(x)
    h = layer.norm1(x) if pre else x
    a, w_self = layer.self_attn(h, h, h, self_mask)
    x = x + layer.dropout(a)
    x = x if pre else layer.norm1(x)
    h = layer.norm3(x) if pre else x
    x = x + layer.dropout(layer.ff(h))
    x = x if pre else layer.norm3(x)
    return x, w_self, w_cross

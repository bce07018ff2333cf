# expect: your answer calls residual, which is not allowed here
from course_utils.transformer import residual


def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    pre = layer.norm_first
    x, w_self = residual(x, lambda h: layer.self_attn(h, h, h, self_mask), layer.norm1, layer.dropout, pre)
    x, w_cross = residual(x, lambda h: layer.cross_attn(h, memory, memory, cross_mask), layer.norm2, layer.dropout, pre)
    x, _ = residual(x, lambda h: (layer.ff(h), None), layer.norm3, layer.dropout, pre)
    return x, w_self, w_cross

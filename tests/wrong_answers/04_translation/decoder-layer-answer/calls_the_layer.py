# expect: runs the whole layer
def decoder_layer_forward(layer, x, memory, self_mask=None, cross_mask=None):
    return layer(x, memory, self_mask, cross_mask)

# expect: the high and low nibbles swapped
def dequantize_block(block):
    """20 bytes of one Q4_1 block (uint8) -> its 32 weights, float32."""
    d = block[0:2].view(torch.float16).float()
    m = block[2:4].view(torch.float16).float()
    packed = block[4:20]
    q = torch.cat([packed >> 4, packed & 0x0F]).float()
    return d * q + m

# expect: the minimum m is not added
def dequantize_block(block):
    """20 bytes of one Q4_1 block (uint8) -> its 32 weights, float32."""
    d = block[0:2].view(torch.float16).float()
    packed = block[4:20]
    q = torch.cat([packed & 0x0F, packed >> 4]).float()
    return d * q

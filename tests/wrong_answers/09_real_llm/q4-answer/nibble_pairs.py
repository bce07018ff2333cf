# expect: the nibbles were read in pairs
def dequantize_block(block):
    """20 bytes of one Q4_1 block (uint8) -> its 32 weights, float32."""
    d = block[0:2].view(torch.float16).float()
    m = block[2:4].view(torch.float16).float()
    packed = block[4:20]
    q = torch.stack([packed & 0x0F, packed >> 4], dim=1).reshape(32).float()  # weight 2j low, 2j + 1 high
    return d * q + m

# expect: not allowed here
def llama_block(x, block, positions):
    """One pre-norm Llama block: x + attn(norm(x)), then + swiglu(norm(.)); (B, T, d) -> (B, T, d)."""
    return block(x, positions)

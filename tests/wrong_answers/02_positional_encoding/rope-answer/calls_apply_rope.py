# expect: your answer calls apply_rope, which is not allowed here
def rope(x, positions):
    return apply_rope(x, positions)

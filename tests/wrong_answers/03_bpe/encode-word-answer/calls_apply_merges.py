# expect: not allowed here
def encode_word(word, merges):
    """Hands the work to the course's apply_merges."""
    return apply_merges(word, merges)

# expect: not allowed here
def train_byte_bpe(text, num_merges):
    """Trains the course's ByteLevelBPE and reads its merges back."""
    tok = ByteLevelBPE().train(text, 256 + num_merges)
    return list(tok.merges)

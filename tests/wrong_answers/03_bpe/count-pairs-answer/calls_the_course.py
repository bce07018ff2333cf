# expect: not allowed here
def count_pairs(corpus):
    """Hands the work to the course's own function."""
    return bpe.count_pairs(corpus)

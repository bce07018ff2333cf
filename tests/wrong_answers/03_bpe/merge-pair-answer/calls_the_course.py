# expect: not allowed here
def merge_pair(symbols, pair):
    """Hands the work to the course's merge engine."""
    return bpe_base.merge_pair(symbols, pair)

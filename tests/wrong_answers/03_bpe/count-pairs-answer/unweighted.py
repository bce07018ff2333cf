# expect: frequencies are missing
def count_pairs(corpus):
    """Counts occurrences but forgets to weight them by the word's frequency."""
    counts = {}
    for symbols in corpus:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] = counts.get(pair, 0) + 1
    return counts

# expect: counted once
def count_pairs(corpus):
    """Counts each distinct pair once per word: misses the second (a, a) in a a a."""
    counts = {}
    for symbols, freq in corpus.items():
        for pair in set(zip(symbols, symbols[1:])):
            counts[pair] = counts.get(pair, 0) + freq
    return counts

# expect: skipped (as str.count does)
def count_pairs(corpus):
    """Skips past a pair after counting it, like str.count: a a a gives (a, a) once."""
    counts = {}
    for symbols, freq in corpus.items():
        i = 0
        while i < len(symbols) - 1:
            pair = (symbols[i], symbols[i + 1])
            counts[pair] = counts.get(pair, 0) + freq
            i += 2 if symbols[i] == symbols[i + 1] else 1
    return counts

# expect: across symbol boundaries
import re


def count_pairs(corpus):
    """Counts "a b" in the symbols joined by spaces (overlaps too): 'ab c' then also holds 'b c'."""
    counts = {}
    for symbols, freq in corpus.items():
        text = " ".join(symbols)
        for a, b in dict.fromkeys(zip(symbols, symbols[1:])):
            hits = len(re.findall(f"(?={re.escape(a + ' ' + b)})", text))
            counts[(a, b)] = counts.get((a, b), 0) + freq * hits
    return counts

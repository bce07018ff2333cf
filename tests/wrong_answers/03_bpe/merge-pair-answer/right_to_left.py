# expect: right to left
def merge_pair(symbols, pair):
    """Scans from the end: a a a becomes a aa."""
    a, b = pair
    out, i = [], len(symbols) - 1
    while i >= 0:
        if i > 0 and symbols[i - 1] == a and symbols[i] == b:
            out.append(a + b)
            i -= 2
        else:
            out.append(symbols[i])
            i -= 1
    return out[::-1]

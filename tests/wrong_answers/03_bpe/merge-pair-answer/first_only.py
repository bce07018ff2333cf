# expect: only the first occurrence
def merge_pair(symbols, pair):
    """Merges the first occurrence and stops."""
    a, b = pair
    for i in range(len(symbols) - 1):
        if symbols[i] == a and symbols[i + 1] == b:
            return list(symbols[:i]) + [a + b] + list(symbols[i + 2 :])
    return list(symbols)

# expect: changed its input `symbols` in place
def merge_pair(symbols, pair):
    """Correct result, but built by editing the caller's list in place."""
    a, b = pair
    i = 0
    while i < len(symbols) - 1:
        if symbols[i] == a and symbols[i + 1] == b:
            symbols[i : i + 2] = [a + b]
        i += 1
    return symbols

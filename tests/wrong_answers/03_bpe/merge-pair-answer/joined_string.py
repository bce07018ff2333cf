# expect: across symbol boundaries
def merge_pair(symbols, pair):
    """Glues the symbols with spaces and replaces "a b": right on letters, wrong on 'ab c' with the pair (b, c)."""
    a, b = pair
    return " ".join(symbols).replace(f"{a} {b}", a + b).split()

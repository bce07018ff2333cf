# expect: wrong order
def encode_word(word, merges):
    """Applies the merges from the last to the first."""
    symbols = list(word) + ["</w>"]
    for a, b in reversed(merges):
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols

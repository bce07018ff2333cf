# expect: applied only once
def encode_word(word, merges):
    """Applies each merge to its first occurrence only."""
    symbols = list(word) + ["</w>"]
    for a, b in merges:
        for i in range(len(symbols) - 1):
            if symbols[i] == a and symbols[i + 1] == b:
                symbols = symbols[:i] + [a + b] + symbols[i + 2 :]
                break
    return symbols

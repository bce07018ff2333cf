# expect: across symbol boundaries
def encode_word(word, merges):
    """Applies each merge with str.replace on the symbols joined by spaces."""
    text = " ".join(list(word) + ["</w>"])
    for a, b in merges:
        text = text.replace(f"{a} {b}", a + b)
    return text.split()

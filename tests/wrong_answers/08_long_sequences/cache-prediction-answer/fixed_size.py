# expect: not what the measurement shows
def prediction():
    """Your prediction: "a", "b" or "c"."""
    return "a"

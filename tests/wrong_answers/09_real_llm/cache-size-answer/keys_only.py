# expect: not what the measurement shows
def prediction():
    """Your prediction: "a", "b", "c" or "d"."""
    return "a"

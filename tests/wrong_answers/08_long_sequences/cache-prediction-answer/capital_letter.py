# expect: should be one of
def prediction():
    """Your prediction: "a", "b" or "c"."""
    return "B"

# expect: should be one of
def prediction():
    return "the decoder"

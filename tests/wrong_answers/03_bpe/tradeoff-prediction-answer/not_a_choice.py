# expect: should be one of
def prediction():
    return "the first merges"

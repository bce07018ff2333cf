# expect: should be one of
def prediction():
    return "b: the entropy falls"

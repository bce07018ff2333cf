# expect: your prediction should be one of
def prediction():
    return "B"

# expect: not what the measurement shows
def prediction():
    return "a"

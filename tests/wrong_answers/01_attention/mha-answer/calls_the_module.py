# expect: not allowed here
def multi_head_attention(mha, query, key, value, mask=None):
    return mha(query, key, value, mask)

# expect: not allowed here
from course_utils.attention import scaled_dot_product_attention


def softmax_attention(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask)

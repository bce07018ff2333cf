# expect: not allowed here
from course_utils.transformer import decoder_self_mask


def decoder_mask(tgt, pad_id):
    return decoder_self_mask(tgt, pad_id)

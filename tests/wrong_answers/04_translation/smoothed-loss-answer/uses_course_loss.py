# expect: not allowed here
from course_utils.train import label_smoothed_cross_entropy


def smoothed_loss(logits, target, eps, pad_id):
    return label_smoothed_cross_entropy(logits, target, eps, ignore_index=pad_id)

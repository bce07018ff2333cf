# expect: not allowed here
from course_utils.vit_maps import attention_rollout


def rollout(attentions):
    return attention_rollout(attentions)

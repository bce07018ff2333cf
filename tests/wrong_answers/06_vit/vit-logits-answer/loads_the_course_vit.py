# expect: not allowed here
from course_utils.vit import ViT


def vit_logits(weights, config, images):
    model = ViT(config)  # the exercise asks you to assemble the forward pass yourself
    model.load_state_dict(weights)
    return model.eval()(images)

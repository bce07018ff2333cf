# expect: not allowed here
from course_utils.vit import patchify


def image_to_patches(images, patch_size):
    return patchify(images, patch_size)  # the exercise asks for your own reshape and permute

# expect: not written yet
def image_to_patches(images, patch_size):
    raise NotImplementedError()

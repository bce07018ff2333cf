# expect: a reshape without a permute cuts strips of rows
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    return images.reshape(B, (H // P) * (W // P), C * P * P)

# expect: the patches come column by column
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 4, 2, 1, 3, 5)  # grid columns before grid rows
    return x.reshape(B, (H // P) * (W // P), C * P * P)

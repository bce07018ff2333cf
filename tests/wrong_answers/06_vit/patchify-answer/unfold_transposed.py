# expect: the pixels inside a patch are transposed
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 1, 5, 3)  # (B, gh, gw, C, col, row)
    return x.reshape(B, -1, C * P * P)

# expect: keep the dtype
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.float().reshape(B, C, H // P, P, W // P, P)  # pixels turned into float32
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)

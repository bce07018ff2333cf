# expect: the channels come last inside each patch
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, P, P, C): MAE's order, not ours
    return x.reshape(B, (H // P) * (W // P), C * P * P)

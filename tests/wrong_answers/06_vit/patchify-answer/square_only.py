# expect: raised RuntimeError
def image_to_patches(images, patch_size):
    B, C, H, W = images.shape
    P, G = patch_size, H // patch_size  # G patches per side: only true for square images
    x = images.reshape(B, C, G, P, G, P)
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, G * G, C * P * P)

"""course_utils.codebook: patches, k-means and the encode/decode round trip, on real Fashion-MNIST."""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.codebook as codebook
from course_utils.codebook import PatchCodebook, kmeans, patchify, unpatchify
from course_utils.data import load_fashion_mnist


def test_doctests():
    result = doctest.testmod(codebook, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), rows=st.integers(1, 4), cols=st.integers(1, 4), p=st.integers(1, 5))
def test_patchify_round_trip_and_matches_unfold(n, rows, cols, p):
    x = torch.randn(n, rows * p, cols * p)
    patches = patchify(x, p)
    assert patches.shape == (n, rows * cols, p * p)
    ref = torch.nn.functional.unfold(x[:, None], kernel_size=p, stride=p).transpose(1, 2)  # torch's own patches
    assert torch.equal(patches, ref)
    assert torch.equal(unpatchify(patches, rows * p, cols * p), x)


def test_kmeans_recovers_separated_clusters_and_never_gets_worse():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(100, 2, generator=g) for c in centres])
    c, history = kmeans(x, 3, 10, generator=g)
    found = sorted(c.round().tolist())
    assert found == sorted(centres.tolist())
    assert all(b <= a + 1e-9 for a, b in zip(history, history[1:])), "Lloyd's steps never increase the error"


def test_codebook_on_fashion_mnist():
    images, _ = load_fashion_mnist("test")
    x = torch.tensor(images[:600], dtype=torch.float32) / 255
    small = PatchCodebook.fit(x[:500], k=8, patch=4, n_patches=4000, n_iter=8, seed=0)
    big = PatchCodebook.fit(x[:500], k=64, patch=4, n_patches=4000, n_iter=8, seed=0)
    held_out = x[500:]
    errs = []
    for book in (small, big):
        ids = book.encode(held_out)
        assert ids.shape == (100, 49) and ids.dtype == torch.int64
        errs.append(float(((book.decode(ids, 28, 28) - held_out) ** 2).mean()))
    assert errs[1] < errs[0] < float(held_out.var()), f"more codewords, better reconstructions: {errs}"
    # encoding the decoded image gives back the same ids (each patch is exactly a codeword now)
    ids = big.encode(held_out[:5])
    assert torch.equal(big.encode(big.decode(ids, 28, 28)), ids)


def test_bad_input():
    with pytest.raises(ValueError, match="multiple of patch"):
        patchify(torch.zeros(1, 28, 28), 5)
    with pytest.raises(TypeError, match="floating-point"):
        patchify(torch.zeros(1, 28, 28, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(torch.zeros(3, 2), 5)
    book = PatchCodebook(torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        book.decode(torch.tensor([[0, 2, 0, 0]]), 4, 4)

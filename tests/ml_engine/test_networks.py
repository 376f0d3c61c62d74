"""Network shapes for each architecture and size, and nnU-Net's planning rules."""

from __future__ import annotations

import pytest
import torch

from ml_engine.networks import (
    ARCHITECTURES,
    TRAINING_DEFAULTS,
    build_network,
    count_parameters,
    defaults_for,
    plan_dynunet,
    size_divisor,
)

pytestmark = pytest.mark.slow  # builds and trains every architecture


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tiny_shapes(arch):
    torch.manual_seed(0)
    model = build_network(arch, 9, "tiny").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 32, 32))  # Swin UNETR: sides divisible by 32, more than 1 voxel at the end
    assert out.shape == (1, 9, 64, 32, 32)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tiny_trains_on_its_patch(arch):
    """In training mode (instance norm needs more than one voxel at the bottleneck) on the default patch."""
    d = defaults_for(arch, "tiny")
    model = build_network(arch, 3, "tiny").train()
    out = model(torch.rand(1, 1, *d.patch))
    assert out.shape == (1, 3, *d.patch)
    out.mean().backward()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_base_shapes(arch):
    model = build_network(arch, 2, "base").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64, 64))
    assert out.shape == (1, 2, 64, 64, 64)
    assert count_parameters(model) > count_parameters(build_network(arch, 2, "tiny"))


def test_defaults_cover_every_network():
    for arch in ARCHITECTURES:
        for size in ("tiny", "base"):
            d = TRAINING_DEFAULTS[(arch, size)]
            divisor = size_divisor(arch, size)
            assert all(p % k == 0 for p, k in zip(d.patch, divisor, strict=True)), (arch, size, d.patch, divisor)


def test_plan_dynunet_isotropic():
    kernels, strides = plan_dynunet((128, 128, 128), (1.5, 1.5, 1.5))
    assert strides[0] == [1, 1, 1]
    assert len(strides) == 6 and all(s == [2, 2, 2] for s in strides[1:])
    assert len(kernels) == len(strides) and all(k == [3, 3, 3] for k in kernels)


def test_plan_dynunet_anisotropic():
    """Thick slices: z is neither pooled nor convolved with 3 until in-plane pooling has caught up."""
    kernels, strides = plan_dynunet((160, 160, 48), (0.8, 0.8, 3.0))
    assert kernels[0] == [3, 3, 1]
    assert strides[1] == [2, 2, 1]
    assert any(s[2] == 2 for s in strides[2:])
    # no feature map below 4 voxels
    sizes = [160, 160, 48]
    for stride in strides:
        sizes = [a // b for a, b in zip(sizes, stride, strict=True)]
    assert min(sizes) >= 4


def test_unknown_arch_or_size():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("resnet", 9, "tiny")
    with pytest.raises(ValueError, match="unknown size"):
        build_network("unet", 9, "huge")

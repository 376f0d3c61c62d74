"""The three architectures of the AbdomenAtlas ensemble, built from MONAI: Swin UNETR, nnU-Net, U-Net.

Every network maps a CT patch (batch, 1, x, y, z) float32 to logits (batch, n_organs, x, y, z): one sigmoid
output per organ (multi-label, as the AbdomenAtlas universal model), so that organs may overlap.

Sizes:
    tiny  CPU-sized models for tests, the demo and the shipped phantom checkpoints (coarse spacing, small patches)
    base  the published sizes (Swin UNETR feature size 48, nnU-Net 32..320 filters, U-Net 32..512), for a GPU

`TRAINING_DEFAULTS[(arch, size)]` holds the patch size, target spacing, batch size and learning rate that go
with each network; they were chosen so that every `tiny` architecture learns the phantoms on 2 CPU cores
(docs/benchmarks.md records what it cost): small patches (32^3 at 3 mm) and many steps learned more per CPU second
than large patches and few steps, most of all for Swin UNETR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

ARCHITECTURES: tuple[str, ...] = ("swin_unetr", "nnunet", "unet")
SIZES: tuple[str, ...] = ("tiny", "base")

# Intensity window (Hounsfield units) of the AbdomenAtlas / universal model preprocessing.
HU_WINDOW: tuple[float, float] = (-175.0, 250.0)


@dataclass(frozen=True)
class TrainingDefaults:
    """What goes with a network: patch (x, y, z) voxels, target spacing (mm), batch size, learning rate, steps."""

    patch: tuple[int, int, int]
    spacing: tuple[float, float, float]
    batch: int
    lr: float
    steps: int


_TINY_SPACING = (3.0, 3.0, 3.0)
_BASE_SPACING = (1.5, 1.5, 1.5)

TRAINING_DEFAULTS: dict[tuple[str, str], TrainingDefaults] = {
    ("unet", "tiny"): TrainingDefaults((32, 32, 32), _TINY_SPACING, 2, 3e-3, 1500),
    ("nnunet", "tiny"): TrainingDefaults((32, 32, 32), _TINY_SPACING, 2, 3e-3, 800),
    ("swin_unetr", "tiny"): TrainingDefaults((32, 32, 32), _TINY_SPACING, 2, 4e-3, 1500),
    ("unet", "base"): TrainingDefaults((96, 96, 96), _BASE_SPACING, 2, 1e-3, 40000),
    # nnU-Net's own 1e-2 is for SGD with momentum 0.99; these networks train with AdamW, whose steps are the rate
    # itself per parameter: 1e-2 would throw the weights around. AdamW's usual rate for 3D U-Nets.
    ("nnunet", "base"): TrainingDefaults((128, 128, 128), _BASE_SPACING, 2, 1e-3, 40000),
    ("swin_unetr", "base"): TrainingDefaults((96, 96, 96), _BASE_SPACING, 2, 1e-4, 40000),
}


def defaults_for(arch: str, size: str) -> TrainingDefaults:
    """The TrainingDefaults of (arch, size); ValueError naming the valid choices otherwise."""
    check_arch_size(arch, size)
    return TRAINING_DEFAULTS[(arch, size)]


def check_arch_size(arch: str, size: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (valid: {', '.join(ARCHITECTURES)})")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} (valid: {', '.join(SIZES)})")


def plan_dynunet(patch: Sequence[int], spacing: Sequence[float], *, max_levels: int = 6,
                 min_feature: int = 4) -> tuple[list[list[int]], list[list[int]]]:
    """Kernel sizes and strides of a DynUNet by nnU-Net's rules, from the patch (voxels) and spacing (mm).

    An axis is pooled (stride 2) while its spacing is at most twice the finest spacing and its feature map stays at
    least 2 x min_feature voxels; an axis more than twice as coarse as the finest gets kernel 1 until pooling of the
    others has caught up. At most max_levels levels (the first has stride 1). Returns (kernels, strides), one
    [kx, ky, kz] each per level.
    """
    sizes = [int(s) for s in patch]
    spacings = [float(s) for s in spacing]
    if len(sizes) != 3 or len(spacings) != 3 or min(sizes) < 1 or min(spacings) <= 0:
        raise ValueError(f"patch and spacing must be 3 positive values each, got {patch} and {spacing}")
    kernels: list[list[int]] = []
    strides: list[list[int]] = []
    while len(strides) < max_levels - 1:
        finest = min(spacings)
        ratio = [sp / finest for sp in spacings]
        stride = [2 if r <= 2 and size % 2 == 0 and size // 2 >= min_feature else 1
                  for r, size in zip(ratio, sizes, strict=True)]
        kernel = [3 if r <= 2 else 1 for r in ratio]
        if all(s == 1 for s in stride):
            break
        sizes = [size // s for size, s in zip(sizes, stride, strict=True)]
        spacings = [sp * s for sp, s in zip(spacings, stride, strict=True)]
        kernels.append(kernel)
        strides.append(stride)
    strides.insert(0, [1, 1, 1])
    kernels.append([3, 3, 3])
    return kernels, strides


def build_network(arch: str, n_organs: int, size: str = "tiny", *, patch: Sequence[int] | None = None,
                  spacing: Sequence[float] | None = None, network: dict | None = None) -> torch.nn.Module:
    """A freshly initialised network: input (B, 1, x, y, z) -> logits (B, n_organs, x, y, z).

    patch and spacing (defaults from TRAINING_DEFAULTS) plan the nnU-Net's kernels and strides; Swin UNETR needs
    every input side divisible by 32, the others by 2 ** (number of poolings) (sliding-window inference pads).
    network: a published start's family and hyper-parameters (ml_engine.starts.families), recorded in its
    checkpoint; it replaces the architecture's own network in its slot of the ensemble.
    """
    check_arch_size(arch, size)
    if n_organs < 1:
        raise ValueError(f"n_organs must be at least 1, got {n_organs}")
    if network:
        from ml_engine.starts.families import build_family

        return build_family(network, n_organs)
    defaults = TRAINING_DEFAULTS[(arch, size)]
    patch = tuple(patch or defaults.patch)
    spacing = tuple(spacing or defaults.spacing)
    if arch == "unet":
        from monai.networks.nets import UNet

        if size == "tiny":
            return UNet(spatial_dims=3, in_channels=1, out_channels=n_organs, channels=(16, 32, 64, 128),
                        strides=(2, 2, 2), num_res_units=1, norm="INSTANCE")
        return UNet(spatial_dims=3, in_channels=1, out_channels=n_organs, channels=(32, 64, 128, 256, 512),
                    strides=(2, 2, 2, 2), num_res_units=2, norm="INSTANCE")
    if arch == "nnunet":
        from monai.networks.nets import DynUNet

        kernels, strides = plan_dynunet(patch, spacing, max_levels=4 if size == "tiny" else 6)
        widths = (16, 32, 64, 128) if size == "tiny" else (32, 64, 128, 256, 320, 320)
        filters = [widths[min(i, len(widths) - 1)] for i in range(len(strides))]
        return DynUNet(spatial_dims=3, in_channels=1, out_channels=n_organs, kernel_size=kernels, strides=strides,
                       upsample_kernel_size=strides[1:], filters=filters, norm_name=("INSTANCE", {"affine": True}),
                       deep_supervision=False, res_block=size == "tiny")
    from monai.networks.nets import SwinUNETR

    if size == "tiny":
        # group norm: the 32^3 training patch leaves 1 voxel at the bottleneck, where instance norm is undefined
        return SwinUNETR(in_channels=1, out_channels=n_organs, feature_size=12, depths=(1, 1, 1, 1),
                         num_heads=(3, 6, 12, 24), window_size=4, use_v2=True, spatial_dims=3,
                         norm_name=("group", {"num_groups": 4}))
    return SwinUNETR(in_channels=1, out_channels=n_organs, feature_size=48, depths=(2, 2, 2, 2),
                     num_heads=(3, 6, 12, 24), window_size=7, use_v2=True, spatial_dims=3)


def size_divisor(arch: str, size: str, patch: Sequence[int] | None = None,
                 spacing: Sequence[float] | None = None) -> tuple[int, int, int]:
    """The factor every input side must be a multiple of, per axis (x, y, z)."""
    check_arch_size(arch, size)
    if arch == "swin_unetr":
        return (32, 32, 32)
    if arch == "unet":
        return (8, 8, 8) if size == "tiny" else (16, 16, 16)
    defaults = TRAINING_DEFAULTS[(arch, size)]
    _, strides = plan_dynunet(patch or defaults.patch, spacing or defaults.spacing,
                              max_levels=4 if size == "tiny" else 6)
    total = [1, 1, 1]
    for stride in strides:
        total = [t * s for t, s in zip(total, stride, strict=True)]
    return tuple(total)  # type: ignore[return-value]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

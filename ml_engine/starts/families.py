"""The network families a published start can bring, built from the hyper-parameters recorded beside its weights.

A start's `network` record is {"family": NAME, ...hyper-parameters}; `build_family(network, n_organs)` builds it with
one output per organ (logits, multi-label as every Atlas network). Families:

    swin_unetr          MONAI's SwinUNETR with a 1x1x1 convolution head (`out.conv.conv`): MONAI bundles, Atlas
    segresnet           MONAI's SegResNet (`conv_final.2.conv` head): SuPreM's SegResNet, MONAI bundles
    suprem_swin_unetr   SuPreM's Universal model on a Swin UNETR backbone: the backbone's decoder feeds a text-driven
                        dynamic head (one small 3-layer 1x1x1 network per class, its parameters made by a controller
                        from the image's pooled bottleneck and the class's embedding); keys as SuPreM saves them
    suprem_unet3d       the same head on SuPreM's 3D U-Net backbone (four levels of two conv-BN-ReLU, 32..512 filters)

Written from the publishers' descriptions and key layouts (MrGiovanni/SuPreM, Project-MONAI/model-zoo), not copied.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("swin_unetr", "segresnet", "suprem_swin_unetr", "suprem_unet3d")
HEAD_KEYS = {  # the output layer's parameters per family: what a class map selects or re-initialises
    "swin_unetr": ("out.conv.conv.weight", "out.conv.conv.bias"),
    "segresnet": ("conv_final.2.conv.weight", "conv_final.2.conv.bias"),
    "suprem_swin_unetr": ("organ_embedding",),
    "suprem_unet3d": ("organ_embedding",),
}
EMBEDDING = 512  # SuPreM's class embeddings (CLIP text encodings) and the controller's halves
_DYNAMIC = ((8, 8), (8, 8), (8, 1))  # SuPreM's per-class head: three 1x1x1 convolutions, 8 -> 8 -> 8 -> 1


def swin_kwargs(network: Mapping) -> dict:
    return {"feature_size": int(network.get("feature_size", 48)), "depths": tuple(network.get("depths", (2, 2, 2, 2))),
            "num_heads": tuple(network.get("num_heads", (3, 6, 12, 24))),
            "window_size": int(network.get("window_size", 7)), "use_v2": bool(network.get("use_v2", False)),
            "spatial_dims": 3}


def build_family(network: Mapping, n_organs: int) -> nn.Module:
    """A freshly initialised network of the family network["family"]: (B, 1, x, y, z) -> (B, n_organs, x, y, z)."""
    family = network.get("family")
    if family == "swin_unetr":
        from monai.networks.nets import SwinUNETR

        return SwinUNETR(in_channels=1, out_channels=n_organs, **swin_kwargs(network))
    if family == "segresnet":
        from monai.networks.nets import SegResNet

        return SegResNet(spatial_dims=3, in_channels=1, out_channels=n_organs,
                         init_filters=int(network.get("init_filters", 16)),
                         blocks_down=tuple(network.get("blocks_down", (1, 2, 2, 4))),
                         blocks_up=tuple(network.get("blocks_up", (1, 1, 1))), dropout_prob=0.0)
    if family == "suprem_swin_unetr":
        return UniversalModel(SwinBackbone(network), n_organs, decoder_channels=int(network.get("feature_size", 48)),
                              bottleneck_channels=16 * int(network.get("feature_size", 48)))
    if family == "suprem_unet3d":
        return UniversalModel(UNet3DBackbone(), n_organs, decoder_channels=64, bottleneck_channels=512)
    raise ValueError(f"unknown network family {family!r} (known: {', '.join(FAMILIES)})")


def family_divisor(network: Mapping) -> int:
    """Every input side must be a multiple of this (sliding windows pad to the patch, which is)."""
    return 32 if "swin" in str(network.get("family")) else 8


class SwinBackbone(nn.Module):
    """MONAI's SwinUNETR run to its last decoder: returns (bottleneck (B, 16F, ...), decoder output (B, F, ...))."""

    def __init__(self, network: Mapping):
        super().__init__()
        from monai.networks.nets import SwinUNETR

        net = SwinUNETR(in_channels=1, out_channels=1, **swin_kwargs(network))
        del net.out  # SuPreM's backbone output layer is never used by its forward: its head is the dynamic one
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.net
        hidden = n.swinViT(x, n.normalize)
        enc0, enc1 = n.encoder1(x), n.encoder2(hidden[0])
        enc2, enc3 = n.encoder3(hidden[1]), n.encoder4(hidden[2])
        bottleneck = n.encoder10(hidden[4])
        dec = n.decoder5(bottleneck, hidden[3])
        dec = n.decoder2(n.decoder3(n.decoder4(dec, enc3), enc2), enc1)
        return bottleneck, n.decoder1(dec, enc0)

    def load_keys(self) -> dict[str, str]:
        """{SuPreM's key under `backbone.`: this module's key}: the backbone's own names, under `net.`."""
        return {k[len("net."):]: k for k in self.state_dict()}


class _BatchStatsNorm(nn.BatchNorm3d):
    """Batch normalisation that always uses the batch's statistics (SuPreM's U-Net normalises so at inference too)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum,
                            self.eps)


def _conv_block(c_in: int, c_out: int) -> nn.Module:
    block = nn.Module()
    block.conv1 = nn.Conv3d(c_in, c_out, kernel_size=3, padding=1)
    block.bn1 = _BatchStatsNorm(c_out)
    return block


class _Level(nn.Module):
    """Two conv-BN-ReLU blocks under `ops.0`, `ops.1` (SuPreM's key names); up levels add `up_conv`."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, up: int | None = None):
        super().__init__()
        if up is not None:
            self.up_conv = nn.ConvTranspose3d(up, up, kernel_size=2, stride=2)
        self.ops = nn.ModuleList([_conv_block(c_in, c_mid), _conv_block(c_mid, c_out)])

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.ops:
            x = F.relu(block.bn1(block.conv1(x)))
        return x


class UNet3DBackbone(nn.Module):
    """SuPreM's 3D U-Net (Models Genesis lineage): down levels 1 -> 64 -> 128 -> 256 -> 512 (each level's first
    block at half its width), max-pooling between them; up levels by transposed convolution and concatenation.
    Returns (bottleneck (B, 512, ...), decoder output (B, 64, ...))."""

    def __init__(self):
        super().__init__()
        self.down_tr64 = _Level(1, 32, 64)
        self.down_tr128 = _Level(64, 64, 128)
        self.down_tr256 = _Level(128, 128, 256)
        self.down_tr512 = _Level(256, 256, 512)
        self.up_tr256 = _Level(512 + 256, 256, 256, up=512)
        self.up_tr128 = _Level(256 + 128, 128, 128, up=256)
        self.up_tr64 = _Level(128 + 64, 64, 64, up=128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip64 = self.down_tr64.run(x)
        skip128 = self.down_tr128.run(F.max_pool3d(skip64, 2))
        skip256 = self.down_tr256.run(F.max_pool3d(skip128, 2))
        bottleneck = self.down_tr512.run(F.max_pool3d(skip256, 2))
        up = bottleneck
        for level, skip in ((self.up_tr256, skip256), (self.up_tr128, skip128), (self.up_tr64, skip64)):
            up = level.run(torch.cat([level.up_conv(up), skip], dim=1))
        return bottleneck, up

    def load_keys(self) -> dict[str, str]:
        return {k: k for k in self.state_dict()}


class UniversalModel(nn.Module):
    """A backbone plus SuPreM's class-conditioned dynamic head, one output per organ.

    Keys follow SuPreM's Universal model: `backbone.*`, `precls_conv.*`, `GAP.*`, `controller.*`, `text_to_vision.*`
    and `organ_embedding` (n_organs, 512): row k is the class embedding of organ k (a class map picks SuPreM's rows;
    an organ with no class gets a fresh row). Unlike SuPreM (a fixed buffer), the rows are parameters, so
    fine-tuning can move them.
    """

    def __init__(self, backbone: nn.Module, n_organs: int, *, decoder_channels: int, bottleneck_channels: int):
        super().__init__()
        self.backbone = backbone
        self.precls_conv = nn.Sequential(nn.GroupNorm(16, decoder_channels), nn.ReLU(inplace=True),
                                         nn.Conv3d(decoder_channels, 8, kernel_size=1))
        self.GAP = nn.Sequential(nn.GroupNorm(16, bottleneck_channels), nn.ReLU(inplace=True),
                                 nn.AdaptiveAvgPool3d((1, 1, 1)), nn.Conv3d(bottleneck_channels, 256, kernel_size=1))
        n_params = sum(i * o + o for i, o in _DYNAMIC)
        self.controller = nn.Conv3d(256 + 256, n_params, kernel_size=1)
        self.text_to_vision = nn.Linear(EMBEDDING, 256)
        self.organ_embedding = nn.Parameter(torch.randn(n_organs, EMBEDDING) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottleneck, decoded = self.backbone(x)
        task = F.relu(self.text_to_vision(self.organ_embedding))  # (C, 256)
        pooled = self.GAP(bottleneck).flatten(1)  # (B, 256)
        features = self.precls_conv(decoded)  # (B, 8, ...)
        n_classes, batch = task.shape[0], x.shape[0]
        cond = torch.cat([pooled[:, None, :].expand(batch, n_classes, 256),
                          task[None].expand(batch, n_classes, 256)], dim=2)
        params = self.controller(cond.reshape(batch * n_classes, 512, 1, 1, 1)).flatten(1)  # (B*C, 153)
        sizes = [i * o for i, o in _DYNAMIC] + [o for _, o in _DYNAMIC]
        parts = torch.split(params, sizes, dim=1)
        weights, biases = parts[:3], parts[3:]
        spatial = features.shape[2:]
        h = features[:, None].expand(batch, n_classes, 8, *spatial).reshape(1, batch * n_classes * 8, *spatial)
        groups = batch * n_classes
        for layer, ((c_in, c_out), w, b) in enumerate(zip(_DYNAMIC, weights, biases, strict=True)):
            h = F.conv3d(h, w.reshape(groups * c_out, c_in, 1, 1, 1), b.reshape(groups * c_out), groups=groups)
            if layer < len(_DYNAMIC) - 1:
                h = F.relu(h)
        return h.reshape(batch, n_classes, *spatial)

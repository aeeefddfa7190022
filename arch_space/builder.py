"""``build_network``: the one place an ``ArchSpec`` becomes a torch module.

A video ResNet read top to bottom: blocks (basic, bottleneck) → stem → ``VideoResNet``.
Module names follow spec paths (``stem``, ``stage2.block1.conv1``, ``fc``), so cost tables,
state dicts and search-space parameter names all speak the same language. Channels, mid widths,
strides and shortcuts of every layer come from ``geometry.walk``, the walk the cost estimates and
``spec.feature_sizes`` read too.
"""

from __future__ import annotations

from torch import Tensor, nn

from arch_space.geometry import LayerShape, walk
from arch_space.ops import ConvKind, get_conv_kind
from arch_space.spec import ArchSpec


def _make_kind(layer: LayerShape, c_in: int, mid: int, strided: bool, t_pad_mode: str
               ) -> ConvKind:
    """One kind conv of a block, to ``layer.planes``; strided as the block, or not at all."""
    t_stride, s_stride = (layer.t_stride, layer.s_stride) if strided else (1, 1)
    return get_conv_kind(layer.kind)(c_in, layer.planes, mid_channels=mid,
                                     t_kernel=layer.t_kernel, t_stride=t_stride,
                                     s_stride=s_stride, t_pad_mode=t_pad_mode)


def _shortcut(layer: LayerShape) -> nn.Module | None:
    """1x1x1 projection when shape changes; its stride is the block's, whatever the kind."""
    if not layer.projection:
        return None
    stride = ConvKind.shortcut_stride(layer.t_stride, layer.s_stride)
    # (B, C_in, T, H, W) -> (B, C_out, T/t_stride, H/s_stride, W/s_stride)
    return nn.Sequential(nn.Conv3d(layer.c_in, layer.c_out, kernel_size=1, stride=stride,
                                   bias=False),
                         nn.BatchNorm3d(layer.c_out))


class BasicBlock(nn.Module):
    """ResNet basic block: kind conv (strided) → BN → ReLU → kind conv → BN, plus shortcut."""

    def __init__(self, layer: LayerShape, t_pad_mode: str) -> None:
        super().__init__()
        planes = layer.planes
        self.conv1 = _make_kind(layer, layer.c_in, layer.mids[0], True, t_pad_mode)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _make_kind(layer, planes, layer.mids[1], False, t_pad_mode)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(layer)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # strided: (B, planes, T/ts, H/ss, W/ss)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1x1 → kind conv (strided) → 1x1x1 (×4 width), plus shortcut."""

    def __init__(self, layer: LayerShape, t_pad_mode: str) -> None:
        super().__init__()
        planes = layer.planes
        self.conv1 = nn.Conv3d(layer.c_in, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _make_kind(layer, planes, layer.mids[0], True, t_pad_mode)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, layer.c_out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(layer.c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(layer)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))  # strided: (B, planes, T/ts, H/ss, W/ss)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Stem(nn.Module):
    """Stem: one conv kind with a 7×7 spatial kernel → BN → ReLU. No max-pool (torchvision, VMZ).

    "3d": 3×7×7; "2d": 1×7×7; "2plus1d": 1×7×7 to ``mid_width`` → BN → ReLU → t×1×1;
    "r2d": a clip_len×7×7 kernel without temporal padding, collapsing time to 1 at once.
    """

    def __init__(self, layer: LayerShape, t_pad_mode: str) -> None:
        super().__init__()
        # (B, 3, T, H, W) -> (B, width, T/t_stride, H/s_stride, W/s_stride); r2d: T -> 1
        self.conv = get_conv_kind(layer.kind)(
            layer.c_in, layer.c_out, mid_channels=layer.mids[0], t_kernel=layer.t_kernel,
            t_stride=layer.t_stride, s_stride=layer.s_stride, s_kernel=layer.s_kernel,
            t_pad_mode="valid" if layer.t_valid else t_pad_mode)
        self.bn = nn.BatchNorm3d(layer.c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Stage(nn.Module):
    """A stage: blocks named ``block1`` … ``blockM``."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        for j, block in enumerate(blocks):
            self.add_module(f"block{j + 1}", block)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.children():
            x = block(x)
        return x


class VideoResNet(nn.Module):
    """A video ResNet built from an ``ArchSpec``; input ``(B, C, T, H, W)``, output logits."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        stem, *layers = walk(spec)
        self.stem = Stem(stem, spec.t_pad_mode)
        block_cls = Bottleneck if spec.block_type == "bottleneck" else BasicBlock
        self.stage_names: list[str] = []
        for i, stage in enumerate(spec.stages):
            blocks, layers = layers[:len(stage.blocks)], layers[len(stage.blocks):]
            self.add_module(f"stage{i + 1}", Stage([block_cls(b, spec.t_pad_mode) for b in blocks]))
            self.stage_names.append(f"stage{i + 1}")
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(spec.feature_dim, spec.num_classes)
        _init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, feature_dim)`` of a clip batch ``(B, C, T, H, W)``."""
        x = self.stem(x)  # (B, stem_width, T', H/2, W/2)
        for name in self.stage_names:
            x = getattr(self, name)(x)  # each stage may stride T, H, W
        # (B, C, T'', H'', W'') -> (B, C, 1, 1, 1) -> (B, C): average over time and space
        return self.pool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def _init_weights(model: nn.Module) -> None:
    """torchvision's video ResNet initialisation (kaiming fan-out convs, unit BN, small fc)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def build_network(spec: ArchSpec) -> VideoResNet:
    """Build the torch module an ``ArchSpec`` describes (input ``(B, C, T, H, W)``)."""
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"build_network expects an ArchSpec, got {type(spec).__name__}")
    return VideoResNet(spec)

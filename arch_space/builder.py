"""``build_network``: the one place an ``ArchSpec`` becomes a torch module.

A video ResNet read top to bottom: blocks (basic, bottleneck) → stem → ``VideoResNet``.
Module names follow spec paths (``stem``, ``stage2.block1.conv1``, ``fc``), so cost tables,
state dicts and search-space parameter names all speak the same language.
"""

from __future__ import annotations

from torch import Tensor, nn

from arch_space.ops import ConvKind, get_conv_kind
from arch_space.spec import (
    BOTTLENECK_EXPANSION,
    ArchSpec,
    BlockSpec,
    StemSpec,
    block_mid_widths,
)


def _make_kind(block: BlockSpec, c_in: int, c_out: int, mid: int, t_stride: int, s_stride: int,
               t_pad_mode: str) -> ConvKind:
    return get_conv_kind(block.kind)(c_in, c_out, mid_channels=mid, t_kernel=block.t_kernel,
                                     t_stride=t_stride, s_stride=s_stride,
                                     t_pad_mode=t_pad_mode)


def _shortcut(c_in: int, c_out: int, block: BlockSpec) -> nn.Module | None:
    """1x1x1 projection when shape changes; its stride is the block's, whatever the kind."""
    if block.t_stride == 1 and block.s_stride == 1 and c_in == c_out:
        return None
    stride = ConvKind.shortcut_stride(block.t_stride, block.s_stride)
    # (B, C_in, T, H, W) -> (B, C_out, T/t_stride, H/s_stride, W/s_stride)
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                         nn.BatchNorm3d(c_out))


class BasicBlock(nn.Module):
    """ResNet basic block: kind conv (strided) → BN → ReLU → kind conv → BN, plus shortcut."""

    expansion = 1

    def __init__(self, spec: ArchSpec, block: BlockSpec, inplanes: int, planes: int) -> None:
        super().__init__()
        mid1, mid2 = block_mid_widths(spec, block, inplanes, planes, (inplanes, planes))
        self.conv1 = _make_kind(block, inplanes, planes, mid1, block.t_stride, block.s_stride,
                                spec.t_pad_mode)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _make_kind(block, planes, planes, mid2, 1, 1, spec.t_pad_mode)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes, block)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # strided: (B, planes, T/ts, H/ss, W/ss)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1x1 → kind conv (strided) → 1x1x1 (×4 width), plus shortcut."""

    expansion = BOTTLENECK_EXPANSION

    def __init__(self, spec: ArchSpec, block: BlockSpec, inplanes: int, planes: int) -> None:
        super().__init__()
        (mid,) = block_mid_widths(spec, block, inplanes, planes, (planes,))
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _make_kind(block, planes, planes, mid, block.t_stride, block.s_stride,
                                spec.t_pad_mode)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * self.expansion, block)

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

    def __init__(self, stem: StemSpec, in_channels: int, t_pad_mode: str) -> None:
        super().__init__()
        kind = {"r2d": "3d"}.get(stem.kind, stem.kind)
        pad_mode = "valid" if stem.kind == "r2d" else t_pad_mode
        # (B, 3, T, H, W) -> (B, width, T/t_stride, H/s_stride, W/s_stride); r2d: T -> 1
        self.conv = get_conv_kind(kind)(in_channels, stem.width, mid_channels=stem.mid_width,
                                        t_kernel=stem.t_kernel, t_stride=stem.t_stride,
                                        s_stride=stem.s_stride, s_kernel=stem.s_kernel,
                                        t_pad_mode=pad_mode)
        self.bn = nn.BatchNorm3d(stem.width)
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
        self.stem = Stem(spec.stem, spec.in_channels, spec.t_pad_mode)
        block_cls = Bottleneck if spec.block_type == "bottleneck" else BasicBlock
        inplanes = spec.stem.width
        self.stage_names: list[str] = []
        for i, stage in enumerate(spec.stages):
            blocks = []
            for block in stage.blocks:
                blocks.append(block_cls(spec, block, inplanes, stage.width))
                inplanes = stage.width * block_cls.expansion
            self.add_module(f"stage{i + 1}", Stage(blocks))
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

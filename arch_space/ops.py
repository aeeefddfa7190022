"""Conv kinds: the per-block choices of the search space, one torch class each.

Every kind has the same constructor shape and maps ``(B, C_in, T, H, W)`` to
``(B, C_out, ceil(T / t_stride), ceil(H / s_stride), ceil(W / s_stride))`` (odd kernels, "same"
padding), so the block's shortcut — a 1x1x1 conv with stride ``(t_stride, s_stride, s_stride)`` —
always agrees with the main path whatever the kind. Every kind can also take its weights from a
2D conv (I3D-style inflation, Carreira & Zisserman 2017) via ``inflate_from_2d``.

The kinds are registered, with their torch-free facts, in ``arch_space.kinds`` (one
``register_kind(facts, "arch_space.ops:Class")`` line each); ``CONV_KINDS`` is the live view of
that registry by name. To add a kind: one ``ConvKind`` subclass here, its cost rule and one
``register_kind`` line there; the registry-parametrized tests then cover its shapes, backward
pass, strides, inflation and cost.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from arch_space import kinds

# Padding of t > 1 kernels along time: "zeros" (torchvision / VMZ), "replicate" (edge frames
# repeated: makes inflation exact at the clip's ends), "valid" (none: R2D's whole-clip stem).
PAD_MODES = ("zeros", "replicate", "valid")


class PaddedConv3d(nn.Conv3d):
    """``nn.Conv3d`` with "same" spatial zero padding and a chosen temporal padding mode.

    Its state-dict keys are those of ``nn.Conv3d`` (``weight``), so layouts stay familiar.
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int],
                 stride: tuple[int, int, int], t_pad_mode: str = "zeros") -> None:
        if t_pad_mode not in PAD_MODES:
            raise ValueError(f"t_pad_mode: unknown temporal padding {t_pad_mode!r}")
        t_pad = kernel[0] // 2 if t_pad_mode == "zeros" else 0
        super().__init__(c_in, c_out, kernel, stride=stride,
                         padding=(t_pad, kernel[1] // 2, kernel[2] // 2), bias=False)
        # Replicate padding is applied in forward, along time only.
        self.replicate_t = kernel[0] // 2 if t_pad_mode == "replicate" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replicate_t:
            # (B, C, T, H, W) -> (B, C, T + 2p, H, W): repeat the first and last frame p times
            x = F.pad(x, (0, 0, 0, 0, self.replicate_t, self.replicate_t), mode="replicate")
        return super().forward(x)


def _identity_bn_(bn: nn.BatchNorm3d) -> None:
    """Make an eval-mode BatchNorm an exact identity (running stats 0/1, gamma = sqrt(1+eps))."""
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_((1.0 + bn.eps) ** 0.5)
        bn.bias.zero_()


class ConvKind(nn.Module):
    """Base of every conv kind. Subclasses build their convs in ``build``.

    Args:
        c_in: input channels.
        c_out: output channels.
        mid_channels: width between the spatial and temporal conv of factorized kinds
            (ignored by the others; the builder computes it with the spec's mid rule).
        t_kernel: temporal extent t (odd).
        t_stride: temporal stride of the whole kind.
        s_stride: spatial stride of the whole kind.
        s_kernel: spatial kernel k (3 in blocks, 7 in stems).
        t_pad_mode: one of ``PAD_MODES``.
    """

    def __init__(self, c_in: int, c_out: int, *, mid_channels: int, t_kernel: int,
                 t_stride: int, s_stride: int, s_kernel: int = 3,
                 t_pad_mode: str = "zeros") -> None:
        super().__init__()
        self.c_in, self.c_out, self.mid_channels = c_in, c_out, mid_channels
        self.t_kernel, self.t_stride, self.s_stride = t_kernel, t_stride, s_stride
        self.s_kernel, self.t_pad_mode = s_kernel, t_pad_mode
        self.build()

    def build(self) -> None:
        """Create the kind's convs from the attributes set by ``__init__``."""
        raise TypeError(f"{type(self).__name__} must define build()")

    @staticmethod
    def shortcut_stride(t_stride: int, s_stride: int) -> tuple[int, int, int]:
        """Stride of the block's 1x1x1 shortcut: the same for every kind, set by the spec."""
        return (t_stride, s_stride, s_stride)

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        """Initialise from a 2D conv weight ``(C_out, C_in, k, k)``; return True when exact.

        Exact means: on a clip of identical frames (eval mode) this kind outputs, at every frame,
        what the 2D conv outputs on one frame. A kind that does not override this keeps its
        random initialisation and claims nothing.
        """
        return False


class Conv2D(ConvKind):
    """2D conv in a video net: kernel 1×k×k, each frame alone (temporal stride subsamples)."""


    def build(self) -> None:
        # (B, C_in, T, H, W) -> (B, C_out, ceil(T/t_stride), ceil(H/s_stride), ceil(W/s_stride))
        self.conv = PaddedConv3d(self.c_in, self.c_out, (1, self.s_kernel, self.s_kernel),
                                 (self.t_stride, self.s_stride, self.s_stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        with torch.no_grad():
            self.conv.weight.copy_(weight.unsqueeze(2))  # (O, I, k, k) -> (O, I, 1, k, k)
        return True


class Conv3D(ConvKind):
    """Full 3D conv (C3D / R3D / I3D): kernel t×k×k."""


    def build(self) -> None:
        # (B, C_in, T, H, W) -> (B, C_out, T', ceil(H/s_stride), ceil(W/s_stride))
        kernel = (self.t_kernel, self.s_kernel, self.s_kernel)
        self.conv = PaddedConv3d(self.c_in, self.c_out, kernel,
                                 (self.t_stride, self.s_stride, self.s_stride), self.t_pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        # I3D: repeat the 2D kernel t times along time and divide by t.
        t = self.t_kernel
        with torch.no_grad():
            self.conv.weight.copy_(weight.unsqueeze(2).repeat(1, 1, t, 1, 1) / t)
        # Zero temporal padding makes the end frames see zeros, so exact only without it.
        return t == 1 or self.t_pad_mode != "zeros"


class Conv2Plus1D(ConvKind):
    """Factorized sequential (2+1)D = P3D-A: spatial 1×k×k → BN → ReLU → temporal t×1×1."""

    def build(self) -> None:
        # (B, C_in, T, H, W) -> (B, M, T, H/s, W/s): space first, at full frame rate
        self.spatial = PaddedConv3d(self.c_in, self.mid_channels, (1, self.s_kernel, self.s_kernel),
                                    (1, self.s_stride, self.s_stride))
        self.bn = nn.BatchNorm3d(self.mid_channels)
        self.relu = nn.ReLU(inplace=True)
        # (B, M, T, H/s, W/s) -> (B, C_out, T/t_stride, H/s, W/s)
        self.temporal = PaddedConv3d(self.mid_channels, self.c_out, (self.t_kernel, 1, 1),
                                     (self.t_stride, 1, 1), self.t_pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.relu(self.bn(self.spatial(x))))

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        """Spatial conv takes the 2D weights; temporal conv starts as identity (centre tap).

        With M >= 2·C_out the spatial conv emits [W·x, -W·x] and the temporal conv computes
        relu(a) - relu(-a) = a: exact through the ReLU. With C_out <= M < 2·C_out only W·x is
        kept (the ReLU clips its negative part: approximate); with M < C_out the first M
        filters are kept (approximate).
        """
        c_out, mid, centre = self.c_out, self.spatial.out_channels, self.t_kernel // 2
        w = weight.unsqueeze(2)  # (O, I, k, k) -> (O, I, 1, k, k)
        with torch.no_grad():
            self.spatial.weight.zero_()
            self.temporal.weight.zero_()
            _identity_bn_(self.bn)
            keep = min(c_out, mid)
            self.spatial.weight[:keep] = w[:keep]
            eye = torch.arange(keep)
            self.temporal.weight[eye, eye, centre] = 1.0
            if mid >= 2 * c_out:
                self.spatial.weight[c_out:2 * c_out] = -w
                self.temporal.weight[eye, eye + c_out, centre] = -1.0
        # Centre-tap only: zero temporal padding adds nothing, so the clip's ends are exact too.
        return mid >= 2 * c_out


class P3DParallel(ConvKind):
    """P3D-B, parallel: S(x) + T(x), a spatial 1×k×k and a temporal t×1×1 conv side by side."""


    def build(self) -> None:
        # Both branches: (B, C_in, T, H, W) -> (B, C_out, T/t_stride, H/s, W/s)
        self.spatial = PaddedConv3d(self.c_in, self.c_out, (1, self.s_kernel, self.s_kernel),
                                    (self.t_stride, self.s_stride, self.s_stride))
        self.temporal = PaddedConv3d(self.c_in, self.c_out, (self.t_kernel, 1, 1),
                                     (self.t_stride, self.s_stride, self.s_stride), self.t_pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.temporal(x)

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        # Spatial branch = the 2D conv; temporal branch starts at zero, so the sum is the 2D output.
        with torch.no_grad():
            self.spatial.weight.copy_(weight.unsqueeze(2))  # (O, I, k, k) -> (O, I, 1, k, k)
            self.temporal.weight.zero_()
        return True


class P3DHybrid(ConvKind):
    """P3D-C, hybrid: S(x) + T(S(x)), with BN → ReLU before the temporal conv."""


    def build(self) -> None:
        # (B, C_in, T, H, W) -> (B, C_out, T, H/s, W/s)
        self.spatial = PaddedConv3d(self.c_in, self.c_out, (1, self.s_kernel, self.s_kernel),
                                    (1, self.s_stride, self.s_stride))
        self.bn = nn.BatchNorm3d(self.c_out)
        self.relu = nn.ReLU(inplace=False)
        # (B, C_out, T, H/s, W/s) -> (B, C_out, T/t_stride, H/s, W/s)
        self.temporal = PaddedConv3d(self.c_out, self.c_out, (self.t_kernel, 1, 1),
                                     (self.t_stride, 1, 1), self.t_pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spatial(x)
        # keep every t_stride-th frame of S(x): the frames the strided temporal conv centres on
        return s[:, :, :: self.t_stride] + self.temporal(self.relu(self.bn(s)))

    def inflate_from_2d(self, weight: torch.Tensor) -> bool:
        # S takes the 2D weights; T starts at zero, so S(x) + T(S(x)) = S(x).
        with torch.no_grad():
            self.spatial.weight.copy_(weight.unsqueeze(2))  # (O, I, k, k) -> (O, I, 1, k, k)
            self.temporal.weight.zero_()
        return True


# Every registered kind's class, by name: a live view of ``arch_space.kinds``.
CONV_KINDS: Mapping[str, type[ConvKind]] = kinds.MapView(
    lambda: {name: get_conv_kind(name) for name in kinds.BLOCK_KINDS})


def get_conv_kind(name: str) -> type[ConvKind]:
    """The ``ConvKind`` class registered for a kind (a name or an alias).

    Raises:
        SpecError: for an unknown kind; TypeError when its registered class is no ``ConvKind``.
    """
    cls = kinds.conv_class(name)
    if not (isinstance(cls, type) and issubclass(cls, ConvKind)):
        raise TypeError(f"kind {name!r}: registered class {cls!r} is not a ConvKind")
    return cls

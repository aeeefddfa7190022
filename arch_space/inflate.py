"""I3D inflation: initialise a video network from a 2D ResNet (Carreira & Zisserman 2017).

Each conv kind knows how to take a 2D kernel (``ConvKind.inflate_from_2d``): 3D kernels repeat it
t times and divide by t; (2+1)D puts it in the spatial conv and starts the temporal conv as
identity; P3D-B/C start the temporal branch at zero; 2D copies. BatchNorm, shortcut and classifier
weights copy. Blocks (or the stem) with ``inflate=False`` keep their random initialisation.

Sources: a vidarch all-2D network's state dict (``layout="vidarch"``, same widths, depths and
block type), or a torchvision 2D ResNet's (``layout="torchvision"``: ``conv1``, ``bn1``,
``layer1.0.conv1`` …, ``fc``; its max-pool has no counterpart here and is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from arch_space.builder import VideoResNet, build_network
from arch_space.ops import ConvKind
from arch_space.spec import ArchSpec

LAYOUTS = ("vidarch", "torchvision")


@dataclass
class InflationReport:
    """What inflation did, module path by module path."""

    exact: list[str] = field(default_factory=list)  # convs whose inflation is exact
    approximate: list[str] = field(default_factory=list)  # convs inflated inexactly
    skipped: list[str] = field(default_factory=list)  # modules left random (inflate=False, fc)

    @property
    def is_exact(self) -> bool:
        """True when a clip of identical frames gives the 2D network's output."""
        return not self.approximate and not any(s != "fc" for s in self.skipped)


def _to_vidarch_key(key: str) -> str:
    """Translate a torchvision 2D ResNet key into vidarch's module path."""
    key = re.sub(r"^conv1\.", "stem.conv.", key)
    key = re.sub(r"^bn1\.", "stem.bn.", key)
    return re.sub(r"^layer(\d+)\.(\d+)\.",
                  lambda m: f"stage{m.group(1)}.block{int(m.group(2)) + 1}.", key)


def _source_weights(state_dict_2d: Mapping[str, Tensor], layout: str) -> dict[str, Tensor]:
    """Map vidarch module path + param name -> 2D tensor (conv weights as (O, I, k, k))."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: unknown state-dict layout {layout!r}; choose one of {LAYOUTS}")
    out: dict[str, Tensor] = {}
    for key, value in state_dict_2d.items():
        if layout == "torchvision":
            key = _to_vidarch_key(key)
        else:
            # a vidarch 2D conv kind keeps its Conv3d in ``.conv``: "stage1.block1.conv1.conv.weight"
            key = key.replace(".conv.weight", ".weight") if key.endswith(".conv.weight") else key
        if value.dim() == 5:
            if value.shape[2] != 1:
                raise ValueError(f"{key}: source is not 2D (temporal extent {value.shape[2]})")
            value = value.squeeze(2)  # (O, I, 1, k, k) -> (O, I, k, k)
        out[key] = value
    return out


def _skip_prefixes(spec: ArchSpec) -> list[str]:
    prefixes = [] if spec.stem.inflate else ["stem."]
    prefixes += [f"{path}." for path, block in spec.block_paths() if not block.inflate]
    return prefixes


def inflate_into(model: VideoResNet, state_dict_2d: Mapping[str, Tensor],
                 layout: str = "vidarch") -> InflationReport:
    """Inflate a 2D state dict into ``model`` in place; return what was exact."""
    source = _source_weights(state_dict_2d, layout)
    skip = _skip_prefixes(model.spec)
    report = InflationReport()
    used: set[str] = set()

    def take(key: str) -> Tensor:
        if key not in source:
            raise KeyError(f"{key}: missing from the 2D state dict ({layout} layout)")
        used.add(key)
        return source[key]

    for path, module in model.named_modules():
        if not path or any((path + ".").startswith(p) for p in skip):
            continue
        if isinstance(module, ConvKind):
            weight = take(f"{path}.weight")
            expected = (module.c_out, module.c_in)
            if tuple(weight.shape[:2]) != expected:
                raise ValueError(f"{path}: 2D weight has shape {tuple(weight.shape)}, "
                                 f"expected {expected} channels (out, in)")
            exact = module.inflate_from_2d(weight)
            (report.exact if exact else report.approximate).append(path)
        elif isinstance(module, nn.BatchNorm3d) and not _inside_kind(model, path):
            with torch.no_grad():
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(module, name).copy_(take(f"{path}.{name}"))
        elif isinstance(module, nn.Conv3d) and path.endswith(("downsample.0", "conv1", "conv3")):
            weight = take(f"{path}.weight")  # 1x1 convs: shortcut, bottleneck ends
            with torch.no_grad():
                module.weight.copy_(weight.unsqueeze(2))  # (O, I, 1, 1) -> (O, I, 1, 1, 1)
    fc_w, fc_b = source.get("fc.weight"), source.get("fc.bias")
    if fc_w is not None and tuple(fc_w.shape) == tuple(model.fc.weight.shape):
        with torch.no_grad():
            model.fc.weight.copy_(take("fc.weight"))
            model.fc.bias.copy_(take("fc.bias") if fc_b is not None else 0.0)
    else:
        report.skipped.append("fc")  # a new head for a new label set
    report.skipped.extend(p.rstrip(".") for p in skip)
    return report


def _inside_kind(model: nn.Module, path: str) -> bool:
    """True for BatchNorms that belong to a conv kind (set by its own inflation)."""
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    return bool(parent) and isinstance(model.get_submodule(parent), ConvKind)


def build_inflated(spec: ArchSpec, state_dict_2d: Mapping[str, Tensor],
                   layout: str = "vidarch") -> VideoResNet:
    """Build ``spec`` and initialise it from a 2D ResNet state dict."""
    model = build_network(spec)
    inflate_into(model, state_dict_2d, layout)
    return model


def inflate_state_dict(spec: ArchSpec, state_dict_2d: Mapping[str, Tensor],
                       layout: str = "vidarch") -> dict[str, Tensor]:
    """The state dict of ``spec`` inflated from a 2D ResNet state dict."""
    return build_inflated(spec, state_dict_2d, layout).state_dict()

"""Conv kinds as data: one table of facts per kind, torch-free; every list of kinds derives from it.

A kind is registered once, with ``register_kind(facts, conv_class)``: its name and aliases,
whether it models time, whether it factorizes space and time, the stem a uniform network of it
gets, its placement family, and its cost rule — the convs it makes, as data (``layout``), which
``arch_space.estimate`` turns into MACs and parameters without building anything. ``conv_class``
is its torch module (an ``arch_space.ops.ConvKind`` subclass) or that class's ``"module:Class"``
path, imported on first use, so this module and everything reading it stay torch-free.

The lists other modules name (``spec.BLOCK_KINDS``, ``presets.STEM_FOR_KIND``,
``analysis.placement.FAMILIES``, ...) are live views of this table: a kind registered later is in
all of them. An unknown kind is a ``SpecError`` naming it, never a silent default.

Adding a kind: a ``ConvKind`` subclass in ``ops.py``, a layout function here mirroring its convs,
and one ``register_kind`` line below. The registry-parametrized tests then cover its shapes,
backward pass, strides, inflation, and that its layout equals what fvcore counts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, NamedTuple

from arch_space.errors import SpecError

# Family of a network whose layers never mix frames; every non-temporal kind belongs to it.
TWO_D_FAMILY = "2D"
# R2D's stem (Tran et al. 2018, Sec. 3.1): a 3D conv whose temporal kernel spans the whole clip,
# without temporal padding, collapsing time at once. A stem kind only, built by kind "3d".
WHOLE_CLIP_STEM = "r2d"
# Kinds cycled over the blocks, bottom to top: P3D's A -> B -> C mix (Qiu et al. 2017).
MIXES: Mapping[str, tuple[str, ...]] = {"p3d_mix": ("2plus1d", "p3d_b", "p3d_c")}


class ConvArgs(NamedTuple):
    """What one use of a kind is built from (the ``ConvKind`` constructor's arguments)."""

    c_in: int  # input channels
    c_out: int  # output channels
    mid: int  # mid width of kinds that have one (the builder's mid rule)
    t_kernel: int  # temporal extent t (odd)
    t_stride: int  # temporal stride of the whole kind
    s_stride: int  # spatial stride of the whole kind
    s_kernel: int = 3  # spatial kernel k (3 in blocks, 7 in stems)


class ConvStep(NamedTuple):
    """One conv a kind makes, named as its submodule (``stage2.block1.conv1.<name>``)."""

    name: str  # submodule name ("conv", "spatial", "temporal")
    c_in: int  # input channels
    c_out: int  # output channels
    kernel: tuple[int, int, int]  # (t, k, k)
    stride: tuple[int, int, int]  # (t, s, s)
    after: str | None = None  # the step whose output it reads; None: the kind's input


class KindLayout(NamedTuple):
    """The convs of one use of a kind; the last step's output is the kind's output."""

    steps: tuple[ConvStep, ...]  # in forward order
    norms: tuple[int, ...] = ()  # channels of the batch-norms inside the kind


@dataclass(frozen=True)
class KindFacts:
    """Everything the torch-free layers know about one conv kind."""

    name: str  # canonical name, stored in specs ("2plus1d")
    temporal: bool  # mixes frames inside its kernel: t_kernel > 1 is meaningful
    factorized: bool  # separate spatial and temporal convs (R(2+1)D, P3D)
    stem: str  # stem kind of a uniform network of this kind; its own name if it can be a stem
    family: str  # placement family of a network with this kind in every layer
    layout: Callable[[ConvArgs], KindLayout]  # its convs (the cost rule), mirroring its class
    aliases: tuple[str, ...] = ()  # other names accepted on input, normalised to ``name``
    uses_mid: bool = False  # has a mid-width conv (R(2+1)D eq. 1): a stem of it stores one


_FACTS: dict[str, KindFacts] = {}  # name -> facts, in display order
_CLASSES: dict[str, type | str] = {}  # name -> torch class, or its "module:Class" path
_ALIASES: dict[str, str] = {}  # alias -> name
_version = [0]  # bumped by every (un)registration; views recompute when it moves


def register_kind(facts: KindFacts, conv_class: type | str) -> KindFacts:
    """Add a conv kind: its facts and its torch class (or ``"module:Class"``), under one name.

    Raises:
        ValueError: naming the kind when its name or an alias is taken, its stem is not a kind
            that can be a stem, or its family contradicts ``temporal``.
    """
    name = facts.name
    taken = {*_FACTS, *_ALIASES, WHOLE_CLIP_STEM, *MIXES}
    if not isinstance(name, str) or not name or name in taken:
        raise ValueError(f"kind {name!r}: the name is empty or already taken")
    for alias in facts.aliases:
        if alias in taken or alias == name:
            raise ValueError(f"kind {name!r}: alias {alias!r} is already taken")
    if facts.stem != name and (facts.stem not in _FACTS or _FACTS[facts.stem].stem != facts.stem):
        raise ValueError(f"kind {name!r}: stem {facts.stem!r} is not a kind that can be a stem "
                         f"({[k for k, f in _FACTS.items() if f.stem == k]}) nor the kind itself")
    if (facts.family == TWO_D_FAMILY) == facts.temporal:
        raise ValueError(f"kind {name!r}: family {facts.family!r}; non-temporal kinds, and only "
                         f"they, belong to {TWO_D_FAMILY!r}")
    if not isinstance(conv_class, type | str):
        raise ValueError(f"kind {name!r}: conv_class must be a class or 'module:Class'")
    _FACTS[name] = facts
    _CLASSES[name] = conv_class
    _ALIASES.update(dict.fromkeys(facts.aliases, name))
    _version[0] += 1
    return facts


def unregister_kind(name: str) -> None:
    """Remove a registered kind (tests add toy kinds and take them away again)."""
    facts = get_kind(name)
    users = [k for k, f in _FACTS.items() if f.stem == facts.name and k != facts.name]
    if users:
        raise ValueError(f"kind {name!r}: is the stem of {users}; unregister those first")
    mixes = [m for m, cycle in MIXES.items() if facts.name in cycle]
    if mixes:
        raise ValueError(f"kind {name!r}: is cycled in the mixes {mixes}")
    del _FACTS[facts.name], _CLASSES[facts.name]
    for alias in facts.aliases:
        del _ALIASES[alias]
    _version[0] += 1


def normalise_kind(kind: str) -> str:
    """Map a kind alias (``p3d_a``) to its canonical name (``2plus1d``); others unchanged."""
    return _ALIASES.get(kind, kind)


def find_kind(kind: Any) -> KindFacts | None:
    """The facts of ``kind`` (a name or an alias), or None when it is not a kind."""
    return _FACTS.get(_ALIASES.get(kind, kind)) if isinstance(kind, str) else None


def get_kind(kind: Any, where: str = "kind") -> KindFacts:
    """The facts of ``kind`` (a name or an alias).

    Raises:
        SpecError: ``"<where>: unknown conv kind 'x'; choose one of [...]"``.
    """
    facts = find_kind(kind)
    if facts is None:
        raise SpecError(f"{where}: unknown conv kind {kind!r}; choose one of {list(_FACTS)}")
    return facts


def conv_class(kind: str) -> type:
    """The torch class of ``kind``, importing it on first use (this imports torch)."""
    facts = get_kind(kind)
    cls = _CLASSES[facts.name]
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        _CLASSES[facts.name] = cls
    return cls


def stem_conv(stem_kind: str) -> tuple[str, bool]:
    """``(conv kind, valid temporal padding)`` that builds a stem of ``stem_kind``."""
    return ("3d", True) if stem_kind == WHOLE_CLIP_STEM else (stem_kind, False)


# --- live views -------------------------------------------------------------------------------
class View:
    """A value derived from the table, recomputed when a kind is (un)registered.

    Like ``dict.keys()``, a view stays current: modules keep the names they always had
    (``spec.BLOCK_KINDS``), and a kind registered after their import is in them.
    """

    def __init__(self, derive: Callable[[], Any]) -> None:
        self._derive = derive
        self._seen: tuple[int, Any] = (-1, None)

    def _value(self) -> Any:
        if self._seen[0] != _version[0]:
            self._seen = (_version[0], self._derive())
        return self._seen[1]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __contains__(self, item: object) -> bool:
        return item in self._value()

    def __repr__(self) -> str:
        return repr(self._value())


class TupleView(View, Sequence[str]):
    """A live tuple (``derive`` returns a tuple): indexing, ``index``, ``==`` with sequences."""

    def __getitem__(self, index: Any) -> Any:
        return self._value()[index]

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        return self._value().index(value, start, len(self) if stop is None else stop)

    def __eq__(self, other: object) -> bool:
        return tuple(self._value()) == (tuple(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]


class SetView(View, Set[str]):
    """A live frozenset (``derive`` returns one): membership, set comparisons."""


class MapView(View, Mapping[str, Any]):
    """A live mapping (``derive`` returns a dict), e.g. kind name -> its stem."""

    def __getitem__(self, key: str) -> Any:
        return self._value()[key]


def _stems() -> dict[str, KindFacts]:
    return {n: f for n, f in _FACTS.items() if f.stem == n}


# Block kinds, in display order.
BLOCK_KINDS: Sequence[str] = TupleView(lambda: tuple(_FACTS))
# Kinds that model time inside the kernel (t_kernel > 1 is meaningful).
TEMPORAL_KINDS: Set[str] = SetView(lambda: frozenset(n for n, f in _FACTS.items() if f.temporal))
# Kinds with separate spatial and temporal convs: R(2+1)D, P3D-B/C.
FACTORIZED_KINDS: Set[str] = SetView(
    lambda: frozenset(n for n, f in _FACTS.items() if f.factorized))
# Aliases accepted on input and normalised away, so one network has one arch_id.
KIND_ALIASES: Mapping[str, str] = MapView(lambda: dict(_ALIASES))
# Stem kinds: the kinds that can be a stem, then R2D's whole-clip stem.
STEM_KINDS: Sequence[str] = TupleView(lambda: (*_stems(), WHOLE_CLIP_STEM))
# Stem kinds whose t_kernel is a free temporal extent (R2D's spans the clip, 2D has none).
TEMPORAL_STEM_KINDS: Set[str] = SetView(
    lambda: frozenset(n for n, f in _stems().items() if f.temporal))
# The stem a uniform network of each kind gets (factorized blocks: the (2+1)D stem).
STEM_FOR_KIND: Mapping[str, str] = MapView(lambda: {n: f.stem for n, f in _FACTS.items()})
# Placement family of a network with one kind in every layer.
UNIFORM_FAMILY: Mapping[str, str] = MapView(lambda: {n: f.family for n, f in _FACTS.items()})
# The families of uniform networks, in kind order.
KIND_FAMILIES: Sequence[str] = TupleView(
    lambda: tuple(dict.fromkeys(f.family for f in _FACTS.values())))
# Display order of kind labels: each kind followed by its aliases, then the mixes.
KIND_ORDER: Sequence[str] = TupleView(
    lambda: (*(x for n, f in _FACTS.items() for x in (n, *f.aliases)), *MIXES))


# --- the built-in kinds: their cost rules (mirroring ops.py) and registration -----------------
def _spatial(a: ConvArgs) -> tuple[int, int, int]:
    return (1, a.s_kernel, a.s_kernel)


def _layout_2d(a: ConvArgs) -> KindLayout:
    """1×k×k, each frame alone; the temporal stride subsamples frames."""
    return KindLayout((ConvStep("conv", a.c_in, a.c_out, _spatial(a),
                                (a.t_stride, a.s_stride, a.s_stride)),))


def _layout_3d(a: ConvArgs) -> KindLayout:
    """One t×k×k conv."""
    return KindLayout((ConvStep("conv", a.c_in, a.c_out, (a.t_kernel, a.s_kernel, a.s_kernel),
                                (a.t_stride, a.s_stride, a.s_stride)),))


def _layout_2plus1d(a: ConvArgs) -> KindLayout:
    """Spatial 1×k×k to ``mid`` → BN → ReLU → temporal t×1×1 (P3D-A, R(2+1)D)."""
    return KindLayout((
        ConvStep("spatial", a.c_in, a.mid, _spatial(a), (1, a.s_stride, a.s_stride)),
        ConvStep("temporal", a.mid, a.c_out, (a.t_kernel, 1, 1), (a.t_stride, 1, 1), "spatial"),
    ), norms=(a.mid,))


def _layout_p3d_b(a: ConvArgs) -> KindLayout:
    """Spatial and temporal convs side by side on the input, summed (P3D-B)."""
    stride = (a.t_stride, a.s_stride, a.s_stride)
    return KindLayout((ConvStep("spatial", a.c_in, a.c_out, _spatial(a), stride),
                       ConvStep("temporal", a.c_in, a.c_out, (a.t_kernel, 1, 1), stride)))


def _layout_p3d_c(a: ConvArgs) -> KindLayout:
    """S(x) + T(S(x)), BN → ReLU before T (P3D-C)."""
    return KindLayout((
        ConvStep("spatial", a.c_in, a.c_out, _spatial(a), (1, a.s_stride, a.s_stride)),
        ConvStep("temporal", a.c_out, a.c_out, (a.t_kernel, 1, 1), (a.t_stride, 1, 1),
                 "spatial"),
    ), norms=(a.c_out,))


register_kind(KindFacts("2d", temporal=False, factorized=False, stem="2d", family=TWO_D_FAMILY,
                        layout=_layout_2d), "arch_space.ops:Conv2D")
register_kind(KindFacts("3d", temporal=True, factorized=False, stem="3d", family="uniform 3D",
                        layout=_layout_3d), "arch_space.ops:Conv3D")
register_kind(KindFacts("2plus1d", temporal=True, factorized=True, stem="2plus1d",
                        family="uniform (2+1)D", layout=_layout_2plus1d, uses_mid=True,
                        aliases=("p3d_a", "r2plus1d", "p3d-a")), "arch_space.ops:Conv2Plus1D")
register_kind(KindFacts("p3d_b", temporal=True, factorized=True, stem="2plus1d",
                        family="uniform (2+1)D", layout=_layout_p3d_b, aliases=("p3d-b",)),
              "arch_space.ops:P3DParallel")
register_kind(KindFacts("p3d_c", temporal=True, factorized=True, stem="2plus1d",
                        family="uniform (2+1)D", layout=_layout_p3d_c, aliases=("p3d-c",)),
              "arch_space.ops:P3DHybrid")

"""A new conv kind is one registration: a toy kind registered once (facts + torch class) is built,
costed (the estimate equals fvcore), sampled, placed in a family, laid out by study designs and
ordered by the findings — then unregistered, and gone from all of them."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import torch

from analysis.findings import arm_table
from analysis.placement import FAMILIES, describe
from arch_space import kinds
from arch_space.builder import build_network
from arch_space.cost import estimate_macs, estimate_params, estimate_per_layer, measure_cost
from arch_space.kinds import ConvArgs, ConvStep, KindFacts, KindLayout
from arch_space.ops import CONV_KINDS, ConvKind, PaddedConv3d
from arch_space.presets import bottom_heavy, per_stage, uniform
from arch_space.space import SearchSpace
from arch_space.spec import BLOCK_KINDS, KIND_ALIASES, TEMPORAL_KINDS, BlockSpec, SpecError
from search.design.composing import compose, to_run_config
from search.design.studies import build_design

TOY = "toy_ts"
TINY = {"widths": (8, 8, 16, 16), "depths": (1, 1, 1, 1), "num_classes": 5, "clip_len": 8,
        "crop_size": 32}


class TemporalThenSpatial(ConvKind):
    """Time first, then space: a temporal t×1×1 conv, then a spatial 1×k×k conv."""

    def build(self) -> None:
        # (B, C_in, T, H, W) -> (B, C_out, T/t_stride, H, W)
        self.temporal = PaddedConv3d(self.c_in, self.c_out, (self.t_kernel, 1, 1),
                                     (self.t_stride, 1, 1), self.t_pad_mode)
        # (B, C_out, T/t_stride, H, W) -> (B, C_out, T/t_stride, H/s, W/s)
        self.spatial = PaddedConv3d(self.c_out, self.c_out, (1, self.s_kernel, self.s_kernel),
                                    (1, self.s_stride, self.s_stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.temporal(x))


def toy_layout(a: ConvArgs) -> KindLayout:
    """The cost rule: the two convs of ``TemporalThenSpatial``."""
    return KindLayout((
        ConvStep("temporal", a.c_in, a.c_out, (a.t_kernel, 1, 1), (a.t_stride, 1, 1)),
        ConvStep("spatial", a.c_out, a.c_out, (1, a.s_kernel, a.s_kernel),
                 (1, a.s_stride, a.s_stride), after="temporal"),
    ))


@pytest.fixture
def toy() -> Iterator[str]:
    """The toy kind, registered in one place for the test, and unregistered after it."""
    kinds.register_kind(KindFacts(TOY, temporal=True, factorized=True, stem="3d",
                                  family="uniform toy", layout=toy_layout, aliases=("toy-ts",)),
                        TemporalThenSpatial)
    try:
        yield TOY
    finally:
        kinds.unregister_kind(TOY)
    assert TOY not in BLOCK_KINDS and TOY not in CONV_KINDS and "toy-ts" not in KIND_ALIASES
    assert "uniform toy" not in FAMILIES
    with pytest.raises(SpecError, match=r"^kind: unknown conv kind 'toy_ts'"):
        kinds.get_kind(TOY)


def test_every_kind_list_has_the_toy(toy):
    assert toy in BLOCK_KINDS and toy in TEMPORAL_KINDS and toy in kinds.FACTORIZED_KINDS
    assert CONV_KINDS[toy] is TemporalThenSpatial and set(CONV_KINDS) == set(BLOCK_KINDS)
    assert KIND_ALIASES["toy-ts"] == toy and BlockSpec(kind="toy-ts").kind == toy
    assert kinds.STEM_FOR_KIND[toy] == "3d" and toy not in kinds.STEM_KINDS
    assert kinds.UNIFORM_FAMILY[toy] == "uniform toy"


def test_toy_builds_and_trains_a_step(toy):
    spec = uniform(toy, **TINY)
    model = build_network(spec)
    assert isinstance(model.stage2.block1.conv1, TemporalThenSpatial)
    logits = model(torch.randn(2, 3, 8, 32, 32))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert model.stage2.block1.conv1.temporal.weight.grad is not None


@pytest.mark.parametrize("block_type", ["basic", "bottleneck"])
def test_toy_cost_estimate_equals_fvcore(toy, block_type):
    # the toy next to built-in kinds, in strided and unstrided blocks
    spec = per_stage([toy, ["3d", toy], [toy, "2plus1d"], "2d"], "3d",
                     widths=(8, 8, 16, 16), depths=(1, 2, 2, 1), block_type=block_type,
                     t_kernel=5, num_classes=5, clip_len=8, crop_size=24)
    torch.set_num_threads(1)
    report = measure_cost(spec)
    assert estimate_macs(spec) == report.macs
    assert estimate_params(spec) == report.params
    assert estimate_per_layer(spec) == report.per_layer
    assert {row["kind"] for row in report.per_layer} >= {toy}


def test_toy_placement_family(toy):
    assert describe(uniform(toy, **TINY)).family == "uniform toy"
    assert describe(bottom_heavy(2, toy, **TINY)).family == "bottom-heavy"
    assert list(FAMILIES).index("uniform toy") == len(FAMILIES) - 2  # before "mixed"
    mixed = per_stage([toy, "3d", toy, toy], "3d", **{k: v for k, v in TINY.items()})
    assert describe(mixed).family == "mixed"


def test_toy_in_a_search_space(toy):
    space = SearchSpace.from_yaml({
        "base": {"widths": [8, 16], "depths": [1, 1], "stem": {"kind": "3d", "width": 8},
                 "clip": "8x32x32", "num_classes": 5},
        "choices": {"stage1": {"kind": ["2d", "toy-ts"], "t_kernel": [3, 5]}}})
    assert space.param_names() == ["stage1.kind", "stage1.t_kernel"]  # the toy is temporal
    points = space.enumerate()
    assert len(points) == 3
    assert {p.stages[0].blocks[0].kind for p in points} == {"2d", toy}


def _design(*overrides: str):
    return build_design(to_run_config(compose([*overrides, "study.match=none",
                                               "study.contrasts=[]"])))


def test_toy_in_study_designs(toy):
    cells = {c.label: c for c in _design("study=conv_kinds", f"study.kinds=[3d,{toy}]").cells}
    assert set(cells) == {"3d", toy}
    kinds = [b.kind for _, b in cells[toy].spec.block_paths()]
    assert kinds == [toy] * len(kinds) and len(kinds) >= 4  # every block, whatever the depths
    placement = _design("study=bottom_vs_top", f"study.uniform=[2d,{toy}]",
                        f"study.temporal_kind={toy}", "study.bottom_heavy=[1]",
                        "study.top_heavy=[1]")
    families = {c.label: c.family for c in placement.cells}
    assert families == {"f_r2d": "2D", f"all_{toy}": "uniform toy",
                        f"bottom1_{toy}": "bottom-heavy", f"top1_{toy}": "top-heavy"}
    for cell in placement.cells:  # the design's family is the one analysis gives the network
        assert describe(cell.spec).family == cell.family


def test_findings_order_the_toy_among_the_kinds(toy):
    arms = ["zz_other", "p3d_mix", toy, "3d", "p3d_a"]
    df = pd.DataFrame([{"kind": k, "arm": k, "seed": s, "arch_id": k, "state": "COMPLETE",
                        "val/acc1": 0.5 + 0.01 * s} for k in arms for s in range(2)])
    table = arm_table(df, ["kind"], by="kind")
    assert list(table["kind"]) == ["3d", "p3d_a", toy, "p3d_mix", "zz_other"]

"""ArchSpec: JSON round trip, stable ids, validation messages that name the field."""

import dataclasses
import subprocess
import sys

import pytest

from arch_space import preset
from arch_space.spec import ArchSpec, BlockSpec, SpecError, StageSpec, StemSpec

ALL_PRESETS = ["r3d_18", "mc3_18", "r2plus1d_18", "r2d", "f_r2d", "mc2", "mc3", "mc4", "mc5",
               "rmc2", "rmc3", "rmc4", "rmc5", "r3d", "r2plus1d", "p3d"]


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_json_round_trip(name):
    spec = preset(name, num_classes=10, clip_len=8)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    assert again.arch_id == spec.arch_id
    assert hash(again) == hash(spec)


def test_json_has_sorted_keys_and_is_canonical():
    text = preset("mc3_18").to_json()
    assert text == ArchSpec.from_json(text).to_json()
    assert text.index('"block_type"') < text.index('"clip_len"') < text.index('"stages"')


def test_arch_id_is_stable_across_processes_and_versions():
    # Golden values: a change here means every stored arch_id in users' databases breaks.
    assert preset("r3d_18").arch_id == "82deb2348560a8b8"
    assert preset("mc3_18").arch_id == "ae9b922a5fea9568"
    code = "from arch_space import preset; print(preset('r2plus1d_18').arch_id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == preset("r2plus1d_18").arch_id


def test_arch_id_distinguishes_every_field():
    spec = preset("r3d_18")
    variants = [
        spec.replace(num_classes=10), spec.replace(clip_len=8), spec.replace(mid_rule="paper"),
        spec.with_blocks(inflate=False), spec.replace(t_pad_mode="replicate"),
    ]
    ids = {spec.arch_id, *(v.arch_id for v in variants)}
    assert len(ids) == 1 + len(variants)


def test_aliases_normalise_to_one_id():
    a = BlockSpec(kind="p3d_a")
    assert a.kind == "2plus1d"
    assert BlockSpec(kind="2d", t_kernel=3) == BlockSpec(kind="2d", t_kernel=1)


def test_spec_import_needs_no_torch():
    code = ("import sys; import arch_space.spec, arch_space.presets; "
            "from arch_space import preset; preset('p3d').arch_id; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _spec_with_block(**block):
    stage = StageSpec(width=16, blocks=(BlockSpec(**block),))
    return ArchSpec(stem=StemSpec(width=8), stages=(stage,), clip_len=8, crop_size=32)


@pytest.mark.parametrize("block, path", [
    (dict(kind="4d"), "stage1.block1.kind"),
    (dict(t_kernel=2), "stage1.block1.t_kernel"),
    (dict(t_kernel=0), "stage1.block1.t_kernel"),
    (dict(t_stride=0), "stage1.block1.t_stride"),
    (dict(s_stride=1.5), "stage1.block1.s_stride"),
    (dict(inflate="yes"), "stage1.block1.inflate"),
])
def test_bad_block_names_its_field(block, path):
    with pytest.raises(SpecError, match=rf"^{path}:"):
        _spec_with_block(**block)


def test_bad_top_level_and_stem_fields_are_named():
    spec = preset("r3d_18")
    with pytest.raises(SpecError, match=r"^block_type:"):
        spec.replace(block_type="wide")
    with pytest.raises(SpecError, match=r"^stem.kind:"):
        dataclasses.replace(spec, stem=StemSpec(kind="4d"))
    with pytest.raises(SpecError, match=r"^num_classes:"):
        spec.replace(num_classes=0)
    with pytest.raises(SpecError, match=r"^stage2.width:"):
        ArchSpec.from_dict({**spec.to_dict(), "stages": [spec.to_dict()["stages"][0],
                                                           {"width": -1, "blocks": [{}]}]})


def test_unknown_json_key_is_named():
    data = preset("r3d_18").to_dict()
    data["stages"][1]["blocks"][0]["kernel"] = 3
    with pytest.raises(SpecError, match=r"^stage2.block1.kernel: unknown field"):
        ArchSpec.from_dict(data)


def test_strides_that_empty_the_map_name_the_block():
    blocks = tuple(BlockSpec(s_stride=2) for _ in range(4))
    with pytest.raises(SpecError, match=r"^stage1.block3.s_stride: strides a 1-pixel"):
        ArchSpec(stem=StemSpec(width=8), stages=(StageSpec(16, blocks),), crop_size=8)
    with pytest.raises(SpecError, match=r"^stage3.block1.t_stride: strides a 1-frame"):
        preset("r3d_18", clip_len=2)


def test_feature_sizes_follow_the_paper_rule():
    sizes = preset("r3d_18").feature_sizes()
    assert sizes["stem"] == (16, 56, 56)
    assert sizes["stage4.block2"] == (2, 7, 7)
    assert preset("mc3_18").feature_sizes()["stage4.block2"] == (16, 7, 7)
    assert preset("r2d", clip_len=8).feature_sizes()["stem"] == (1, 56, 56)
    assert preset("rmc3").feature_sizes()["stage2.block2"] == (8, 28, 28)

"""``python -m search.run`` on real video: a tiny class-per-folder tree of mp4s written with PyAV."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from search.design.composing import compose, to_run_config
from search.design.studies import StudyError, build_design
from search.run import main
from tests.search.polling import query

CLASSES = ("jump", "run", "wave")


def write_video(path: Path, n_frames: int = 12, size: int = 32, value: int = 0) -> None:
    """A tiny mp4 whose frames brighten over time (from ``value``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height = stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            image = np.full((size, size, 3), (value + 8 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/<class>/<video>.mp4: 3 classes x 4 videos of 12 frames at 32 x 32, plus one corrupt."""
    root = tmp_path_factory.mktemp("video") / "clips"
    for label, name in enumerate(CLASSES):
        for j in range(4):
            write_video(root / name / f"{name}_{j}.mp4", value=60 * label + 5 * j)
    (root / "run" / "run_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    return root




# --- config (fast, no Ray) ----------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (["data=folder", "data.root=MISSING_DIR"], "data.root: no such directory: "),
    (["data=folder"], "data.root: not set"),
    (["data=ucf101", "data.root=MISSING_DIR", "data.split_dir=x"],
     "data.root: no such directory: "),
    (["data=kinetics", "data.root=.", "data.annotations=nope.csv", "data.val_annotations=x"],
     "data.annotations: no such file: /"),
    (["data=ssv2", "data.root=.", "data.annotations=nope.json", "data.val_annotations=x",
      "data.labels=y"], "data.annotations: no such file: /"),
])
def test_a_missing_path_is_one_line_and_creates_no_database(argv: list[str], expected: str,
                                                            tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "studies.db"
    assert main(["study=smoke", f"storage=sqlite:///{db}", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1, err
    for name in ("MISSING_DIR", "nope.csv", "nope.json"):  # named by its absolute path
        if any(name in a for a in argv):
            assert f"{tmp_path / name}\n" in err, err
    assert list(tmp_path.iterdir()) == []  # no database, nothing


def test_networks_are_sized_to_the_video_data(tree: Path) -> None:
    cfg = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                 "data.clip_len=6", "data.crop_size=24"]))
    design = build_design(cfg)
    assert cfg.data.num_classes == len(CLASSES)  # found in the tree
    for cell in design.cells:
        assert (cell.spec.num_classes, cell.spec.clip_len, cell.spec.crop_size) == (3, 6, 24)
    subset = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                    "data.classes=[wave,jump]"]))
    build_design(subset)
    assert subset.data.num_classes == 2
    wrong = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                   "data.num_classes=5"]))
    with pytest.raises(StudyError, match=r"^data\.num_classes: 5 given, but the dataset has 3"):
        build_design(wrong)
    unknown = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                     "data.classes=[swim]"]))
    with pytest.raises(StudyError, match=r"^data\.classes: 'swim'"):
        build_design(unknown)


def test_video_sets_hold_out_every_class_and_apply_limits(tree: Path) -> None:
    from dataclasses import asdict

    from search.data.video import video_sets

    cfg = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                 "data.n_train=null", "data.n_val=null"]))
    train, val = video_sets(asdict(cfg.data))
    assert len(train) + len(val) == 13 and not {p for p, _ in train.items} & {p for p, _ in val.items}
    assert sorted({y for _, y in val.items}) == [0, 1, 2]  # every class is validated
    assert val.transform.train is False and train.transform.train is True
    again, _ = video_sets(asdict(cfg.data))
    assert again.items == train.items  # fixed by data_seed
    cfg.data.n_train = 4
    small, _ = video_sets(asdict(cfg.data))
    assert len(small) == 4


def test_the_video_draw_follows_the_data_seed_where_one_applies(tree: Path,
                                                                tmp_path: Path) -> None:
    """Without an official split each seed holds out its own val videos; with one (and no
    n_train / n_val subsets) the split files fix every video and no data seed is stored."""
    from dataclasses import asdict

    from search.data.video import draws_with_seed, video_sets
    from search.design.protocol import trial_data_seed

    whole = ("data.n_train=null", "data.n_val=null")
    data = asdict(to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}",
                                         *whole])).data)
    assert draws_with_seed(data)
    held_out = {seed: video_sets({**data, "data_seed": trial_data_seed(None, seed)})[1].items
                for seed in range(4)}
    assert len({tuple(items) for items in held_out.values()}) > 1
    assert video_sets({**data, "data_seed": trial_data_seed(None, 0)})[1].items == held_out[0]
    ucf = to_run_config(compose(["study=smoke", "data=ucf101", *whole,
                                 *_annotated(tree, tmp_path, "ucf101")]))
    assert not draws_with_seed(asdict(ucf.data))
    ucf.data.n_train = 4  # a random subset of the official training split
    assert draws_with_seed(asdict(ucf.data))


def _annotated(tree: Path, tmp_path: Path, preset: str) -> list[str]:
    """Split / annotation files over ``tree`` in the layout of ``preset``; its overrides."""
    videos = {name: sorted(p.name for p in (tree / name).glob(f"{name}_*.mp4")) for name in CLASSES}
    if preset == "ucf101":
        splits = tmp_path / "ucfTrainTestlist"
        splits.mkdir()
        (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
        (splits / "trainlist01.txt").write_text("".join(
            f"{c}/{v} {i + 1}\n" for i, c in enumerate(CLASSES) for v in videos[c][:3]))
        (splits / "testlist01.txt").write_text("".join(f"{c}/{videos[c][3]}\n" for c in CLASSES))
        return [f"data.root={tree}", f"data.split_dir={splits}"]
    if preset == "kinetics":
        for part, pick in (("train", slice(0, 3)), ("val", slice(3, 4))):
            (tmp_path / f"{part}.csv").write_text("path,label\n" + "".join(
                f"{c}/{v},{c}\n" for c in CLASSES for v in videos[c][pick]))
        return [f"data.root={tree}", f"data.annotations={tmp_path / 'train.csv'}",
                f"data.val_annotations={tmp_path / 'val.csv'}"]
    # ssv2: <id>.mp4 in one folder, classes are templates
    flat = tmp_path / "ssv2"
    flat.mkdir()
    entries: dict[str, list[dict[str, str]]] = {"train": [], "val": []}
    for c in CLASSES:
        for j, v in enumerate(videos[c][:4]):  # not run_broken.mp4
            (flat / f"{c}{j}.mp4").symlink_to(tree / c / v)
            entries["train" if j < 3 else "val"].append(
                {"id": f"{c}{j}", "template": f"Doing [something] {c}", "label": "x"})
    (tmp_path / "labels.json").write_text(json.dumps(
        {f"Doing something {c}": str(i) for i, c in enumerate(CLASSES)}))
    for part, items in entries.items():
        (tmp_path / f"{part}.json").write_text(json.dumps(items))
    return [f"data.root={flat}", f"data.annotations={tmp_path / 'train.json'}",
            f"data.val_annotations={tmp_path / 'val.json'}", f"data.labels={tmp_path / 'labels.json'}",
            "data.suffix=.mp4"]


@pytest.mark.parametrize("preset", ["ucf101", "kinetics", "ssv2"])
def test_dataset_presets_read_their_annotations(preset: str, tree: Path, tmp_path: Path) -> None:
    from dataclasses import asdict

    from search.data.video import video_sets

    cfg = to_run_config(compose(["study=smoke", f"data={preset}", *_annotated(tree, tmp_path, preset),
                                 "data.crop_size=32", "data.resize=32", "data.clip_len=4"]))
    design = build_design(cfg)
    assert cfg.data.num_classes == 3 and design.cells[0].spec.num_classes == 3
    train, val = video_sets(asdict(cfg.data))
    assert (len(train), len(val)) == (9, 3)
    assert sorted(y for _, y in val.items) == [0, 1, 2]
    assert train.transform.hflip is (preset != "ssv2")
    clip, label = val[2]
    assert clip.shape == (3, 4, 32, 32) and label == 2 and val.failures == 0


# --- end to end through Ray (slow) --------------------------------------------------------------


@pytest.mark.slow
def test_smoke_study_on_a_folder_of_videos(runner, tree: Path) -> None:
    """study=smoke on real mp4s: COMPLETE rows, 3-class networks, the corrupt video counted."""
    db = runner.cwd / "video.db"
    out = runner.run("data=folder", f"data.root={tree}", "data.crop_size=32", "data.resize=32",
                     "data.num_workers=1", f"storage=sqlite:///{db}", timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    states = query(db, "SELECT state FROM trials")
    assert [s for (s,) in states] == ["COMPLETE"] * 4
    specs = [json.loads(s) for (s,) in query(db, "SELECT spec_json FROM archs")]
    assert len(specs) == 2
    assert all((s["num_classes"], s["clip_len"], s["crop_size"]) == (3, 4, 32) for s in specs)
    skipped = query(db, "SELECT value FROM epoch_metrics WHERE name = 'data/skipped'")
    assert len(skipped) == 4 and all(v == 1.0 for (v,) in skipped)  # one row per trial-epoch
    config = json.loads(query(db, "SELECT config_json FROM studies")[0][0])
    assert config["data"]["num_classes"] == 3 and config["data"]["root"] == str(tree)
    # No official split: each seed held out its own val videos, drawn with its data seed.
    from search.design.protocol import trial_data_seed

    for seed, data_seed, chance, majority in query(
            db, "SELECT seed, data_seed, chance_acc, majority_acc FROM trials"):
        assert data_seed == trial_data_seed(None, seed)
        assert chance == pytest.approx(1 / 3) and 1 / 3 <= majority <= 1


def test_decode_workers_do_not_block_resuming(tree: Path) -> None:
    from search.design.resuming import check_resumable, snapshot

    def current(*extra: str) -> dict:
        cfg = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}", *extra]))
        build_design(cfg)  # fills num_classes and makes the paths absolute, as main() does
        return snapshot(cfg)

    stored = json.dumps(current())
    assert check_resumable(stored, current("data.num_workers=3"), "smoke") is True
    from search.design.composing import ConfigError

    with pytest.raises(ConfigError, match=r"^data\.crop_size: study 'smoke' exists"):
        check_resumable(stored, current("data.crop_size=64"), "smoke")

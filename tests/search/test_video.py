"""Real-video datasets on small mp4s written here with PyAV, one of them corrupt."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from search.data.transforms import ClipTransform
from search.data.video import (
    ClipSampling,
    VideoDataset,
    csv_dataset,
    decode_clip,
    folder_dataset,
    json_dataset,
)

N_FRAMES = 12


def write_video(path: Path, n_frames: int = N_FRAMES, size: tuple[int, int] = (40, 48),
                value: int = 0) -> None:
    """An mp4 whose frame i is uniformly grey at (value + 10 i) so frames can be identified."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(n_frames):
            image = np.full((*size, 3), value + 10 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/<class>/<video>.mp4: 2 classes x 2 videos, plus one corrupt file in class 'b'."""
    root = tmp_path / "videos"
    for label, name in enumerate(["a", "b"]):
        for j in range(2):
            write_video(root / name / f"v_{name}_g0{j}.mp4", value=100 * label)
    (root / "b" / "v_b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return root


def test_decode_clip_strides_and_pads(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4")
    frames = decode_clip(tmp_path / "v.mp4", ClipSampling(clip_len=4, frame_stride=3, mode="center"))
    assert frames.shape == (4, 40, 48, 3) and frames.dtype == torch.uint8
    grey = frames[:, 20, 24].float().mean(-1)
    assert torch.allclose(grey, torch.tensor([10.0, 40, 70, 100]), atol=6)  # frames 1, 4, 7, 10
    # A clip longer than the video repeats the last frame.
    long = decode_clip(tmp_path / "v.mp4", ClipSampling(clip_len=8, frame_stride=2, mode="center"))
    assert long.shape[0] == 8 and torch.equal(long[-1], long[-2])
    uniform = decode_clip(tmp_path / "v.mp4", ClipSampling(clip_len=3, mode="uniform"))
    assert torch.allclose(uniform[:, 20, 24].float().mean(-1), torch.tensor([0.0, 60, 110]), atol=6)


def test_folder_dataset_skips_corrupt_video(tree: Path) -> None:
    ds = folder_dataset(tree, sampling=ClipSampling(clip_len=4, frame_stride=2),
                        transform=ClipTransform(resize=36, crop_size=32))
    assert ds.classes == ["a", "b"] and len(ds) == 5
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips, labels = next(iter(loader))
    assert clips.shape == (5, 3, 4, 32, 32) and torch.isfinite(clips).all()
    assert ds.failures == 1
    assert any("v_b_broken.mp4" in str(w.message) for w in caught)
    # Sorted, the broken file is item 2; the next video (v_b_g00, class b) stands in for it.
    assert labels.tolist() == [0, 0, 1, 1, 1]


def test_folder_dataset_with_workers_counts_failures(tree: Path) -> None:
    ds = folder_dataset(tree, train=False, sampling=ClipSampling(clip_len=4),
                        transform=ClipTransform(resize=32, crop_size=32, train=False))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert sum(b[0].shape[0] for b in batches) == 5
    assert ds.failures == 1


def test_ucf101_split_files(tree: Path, tmp_path: Path) -> None:
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 a\n2 b\n")
    (splits / "trainlist01.txt").write_text("a/v_a_g00.mp4 1\nb/v_b_g00.mp4 2\n")
    (splits / "testlist01.txt").write_text("a/v_a_g01.mp4\nb/v_b_g01.mp4\n")
    train = folder_dataset(tree, split_dir=splits, train=True)
    test = folder_dataset(tree, split_dir=splits, train=False)
    assert [label for _, label in train.items] == [0, 1]
    assert [Path(p).name for p, _ in test.items] == ["v_a_g01.mp4", "v_b_g01.mp4"]


def test_hmdb51_split_files(tree: Path, tmp_path: Path) -> None:
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "a_test_split1.txt").write_text("v_a_g00.mp4 1\nv_a_g01.mp4 2\n")
    (splits / "b_test_split1.txt").write_text("v_b_g00.mp4 1 \nv_b_g01.mp4 0\n")
    train = folder_dataset(tree, split_dir=splits, train=True)
    test = folder_dataset(tree, split_dir=splits, train=False)
    assert train.classes == ["a", "b"]
    assert sorted(label for _, label in train.items) == [0, 1]
    assert [Path(p).name for p, _ in test.items] == ["v_a_g01.mp4"]


def test_kinetics_csv(tmp_path: Path) -> None:
    root = tmp_path / "k400"
    write_video(root / "abseiling" / "yt1_000010_000020.mp4")
    write_video(root / "zumba" / "yt2_000000_000010.mp4")
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,yt1,10,20,train\nzumba,yt2,0,10,train\nzumba,yt3,0,10,val\n")
    ds = csv_dataset(tmp_path / "train.csv", root, split="train",
                     sampling=ClipSampling(clip_len=4), transform=ClipTransform(32, 32))
    assert ds.classes == ["abseiling", "zumba"] and len(ds) == 2
    clip, label = ds[1]
    assert clip.shape == (3, 4, 32, 32) and label == 1 and ds.failures == 0
    (tmp_path / "plain.csv").write_text("path,label\nzumba/yt2_000000_000010.mp4,zumba\n")
    assert len(csv_dataset(tmp_path / "plain.csv", root)) == 1


def test_something_something_json(tmp_path: Path) -> None:
    write_video(tmp_path / "ssv2" / "7.webm".replace(".webm", ".mp4"))
    (tmp_path / "labels.json").write_text(json.dumps(
        {"Pushing something from left to right": "0", "Pushing something from right to left": "1"}))
    (tmp_path / "train.json").write_text(json.dumps(
        [{"id": "7", "template": "Pushing [something] from right to left", "label": "pushing a cup"}]))
    ds = json_dataset(tmp_path / "train.json", tmp_path / "labels.json", tmp_path / "ssv2",
                      suffix=".mp4", sampling=ClipSampling(clip_len=4),
                      transform=ClipTransform(32, 32))
    assert ds.classes[1] == "Pushing something from right to left"
    clip, label = ds[0]
    assert label == 1 and clip.shape == (3, 4, 32, 32)
    default = json_dataset(tmp_path / "train.json", tmp_path / "labels.json", tmp_path / "ssv2")
    assert default.transform.hflip is False  # left/right labels must not be flipped


def test_truncated_video_is_skipped_or_shortened(tmp_path: Path) -> None:
    write_video(tmp_path / "full.mp4", n_frames=24)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    ds = VideoDataset([(tmp_path / "cut.mp4", 0), (tmp_path / "full.mp4", 1)], ["x", "y"],
                      ClipSampling(clip_len=4), ClipTransform(32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip, label = ds[0]
    assert clip.shape == (3, 4, 32, 32) and torch.isfinite(clip).all()
    # Either PyAV decodes what is left of the cut file, or it is skipped and counted.
    assert (label, ds.failures) in {(0, 0), (1, 1)}


def test_training_epoch_survives_a_corrupt_video(tree: Path) -> None:
    from arch_space.builder import build_network
    from arch_space.presets import uniform
    from search.train import TrainConfig, train

    ds = folder_dataset(tree, sampling=ClipSampling(clip_len=4, frame_stride=2),
                        transform=ClipTransform(resize=32, crop_size=32))
    torch.manual_seed(0)
    model = build_network(uniform("3d", widths=(8, 8, 8, 8), depths=(1, 1, 1, 1), stem_width=8,
                                  num_classes=2, clip_len=4, crop_size=32,
                                  temporal_downsample=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(model, ds, ds, TrainConfig(epochs=1, batch_size=2), seed=0)
    assert result.status == "ok" and ds.failures >= 1

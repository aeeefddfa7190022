"""Decoders (torchcodec / PyAV), the fallback notice, and the decoded-clip cache."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from search.data import cache as clip_cache
from search.data import decoders
from search.data.transforms import ClipTransform
from search.data.video import ClipSampling, VideoDataset
from tests.search.polling import query
from tests.search.test_run_video import CLASSES, write_video

needs_torchcodec = pytest.mark.skipif(decoders.torchcodec_problem() is not None,
                                      reason=f"torchcodec: {decoders.torchcodec_problem()}")


def write_textured(path: Path, n_frames: int = 20, size: tuple[int, int] = (48, 64),
                   phase: float = 0.0) -> Path:
    """An mp4 of a drifting colour pattern (so a wrong frame or pixel shows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for t in range(n_frames):
            wave = np.sin((xx + 4 * t) / 7.0 + phase) * np.cos(yy / 9.0)
            image = (127 + 100 * wave[..., None] * np.array([1.0, 0.7, 0.4])).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def videos(tmp_path: Path) -> list[Path]:
    """Three textured mp4s and one corrupt file."""
    paths = [write_textured(tmp_path / "v" / f"{i}.mp4", phase=i) for i in range(3)]
    broken = tmp_path / "v" / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return [*paths, broken]


def dataset(paths: list[Path], mode: str = "random", decoder: str = "pyav",
            clip_len: int = 4, resize: int = 40) -> VideoDataset:
    return VideoDataset([(p, i % 2) for i, p in enumerate(paths)], ["a", "b"],
                        ClipSampling(clip_len=clip_len, frame_stride=2, mode=mode),
                        ClipTransform(resize=resize, crop_size=32, train=mode == "random"),
                        decoder=decoder)


# --- decoders ----------------------------------------------------------------------------------


@needs_torchcodec
def test_torchcodec_and_pyav_decode_the_same_frames(videos: list[Path]) -> None:
    every = [decoders.decode_frames(videos[0], None, decoder=name)
             for name in ("torchcodec", "pyav")]
    assert every[0].shape == every[1].shape == (20, 48, 64, 3)
    assert every[0].dtype == every[1].dtype == torch.uint8
    diff = (every[0].int() - every[1].int()).abs()
    assert diff.float().mean() < 1.0 and diff.max() <= 8  # same frames, codec rounding at most
    picked = decoders.decode_frames(videos[0], np.array([3, 7, 19]), decoder="torchcodec")
    assert torch.equal(picked, every[0][[3, 7, 19]])
    # A clip through the dataset is the same clip with either decoder (same random draws).
    clips = []
    for name in ("torchcodec", "pyav"):
        torch.manual_seed(3)
        clips.append(dataset(videos[:3], decoder=name)[1][0])
    assert (clips[0] - clips[1]).abs().max() < 0.2
    with pytest.raises(IndexError):
        decoders.decode_frames(videos[0], np.array([20]), decoder="torchcodec")


def test_auto_falls_back_to_pyav_with_one_line_notice(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "torchcodec"] + ["torchcodec"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it could not be imported
    monkeypatch.setattr(decoders, "_noticed", set())
    decoders.torchcodec_problem.cache_clear()
    try:
        assert decoders.resolve_decoder("auto") == "pyav"
        assert decoders.resolve_decoder("auto") == "pyav"
        assert decoders.resolve_decoder("pyav") == "pyav"
        err = capsys.readouterr().err
        assert err.startswith("notice: data.decoder=auto: torchcodec cannot be loaded "
                              "(ModuleNotFoundError")
        assert err.endswith("decoding with PyAV\n") and err.count("\n") == 1, err
        on_gpu = VideoDataset([("x.mp4", 0)], ["a"], decoder="auto", decode_device="cuda")
        assert on_gpu.decoder == "pyav" and on_gpu.decode_device == "cpu"
        assert capsys.readouterr().err == ("notice: data.decode_device=cuda: PyAV decodes on the "
                                           "CPU only; decoding on the CPU\n")
    finally:
        decoders.torchcodec_problem.cache_clear()
    with pytest.raises(ValueError, match="decoder: unknown 'ffmpeg'"):
        decoders.resolve_decoder("ffmpeg")


# --- the clip cache -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "resize"), [("random", 40), ("center", 40), ("random", 24)])
def test_cached_clips_equal_decoded_ones_and_epochs_after_do_not_decode(
        videos: list[Path], tmp_path: Path, mode: str, resize: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same clips (the same random draws) from the cache as decoded; resize 24 < crop 32 pads."""
    plain, cached = dataset(videos, mode, resize=resize), dataset(videos, mode, resize=resize)
    cached.use_cache(tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match="broken.mp4"):
        for i in (0, 1, 2, 3):
            torch.manual_seed(i)
            want, label = plain[i]
            torch.manual_seed(i)
            got, cached_label = cached[i]
            assert got.shape == want.shape == (3, 4, 32, 32) and label == cached_label
            # The cache rounds the resized frames to uint8: 0.5 / 255 / std at most.
            assert (got - want).abs().max() < 0.01
    assert cached.failures == plain.failures == 1  # the broken video, counted once

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr("search.data.video.decode_clip", no_decoding)
    monkeypatch.setattr("search.data.cache.decode_frames", no_decoding)
    again = dataset(videos, mode, resize=resize)  # a new trial on this node: opens the cache, decodes nothing
    again.use_cache(tmp_path / "cache")
    loader = torch.utils.data.DataLoader(again, batch_size=2, num_workers=1)
    batches = [x.shape for x, _ in loader]  # in a worker process (warnings stay there)
    assert batches == [(2, 3, 4, 32, 32)] * 2 and again.failures == 1


def test_cache_key_changes_with_what_determines_the_clips(videos: list[Path],
                                                          tmp_path: Path) -> None:
    key = clip_cache.cache_key
    train = dataset(videos[:3])
    assert key(train) == key(dataset(videos[:3]))  # hit: same videos, same settings
    assert key(train) == key(dataset(videos[:3], clip_len=8))  # random: every frame is stored
    assert key(train) != key(dataset(videos[:3], resize=48))
    assert key(train) != key(dataset(videos[:2]))
    assert key(train) != key(dataset(videos[:3], mode="center"))
    assert key(train) != key(dataset(videos[:3], decoder="torchcodec")) \
        or decoders.torchcodec_problem() is not None
    val = dataset(videos[:3], "center")
    assert key(val) != key(dataset(videos[:3], "center", clip_len=8))  # the clip is stored
    # A re-encoded video (new size / mtime) is a new key, hence a new cache.
    before = key(val)
    write_textured(videos[0], n_frames=24)
    os.utime(videos[0], ns=(1, 1))
    assert key(dataset(videos[:3], "center")) != before


def test_cache_is_written_once_and_rewritten_when_invalid(videos: list[Path],
                                                          tmp_path: Path) -> None:
    root = tmp_path / "cache"
    first = dataset(videos[:3])
    first.use_cache(root)
    directory = first.cache.directory
    index = directory / "index.json"
    stamp = index.stat().st_mtime_ns
    second = dataset(videos[:3])
    second.use_cache(root)  # a hit: the same directory, not rewritten
    assert second.cache.directory == directory and index.stat().st_mtime_ns == stamp
    entries = json.loads(index.read_text())["entries"]
    assert [tuple(e["shape"]) for e in entries] == [(20, 40, 53)] * 3  # every frame at 40 px
    # A truncated shard (a disk filled up, a copy cut short) is found and the cache rewritten.
    shard = directory / "shard-00000.u8"
    shard.write_bytes(shard.read_bytes()[:1000])
    third = dataset(videos[:3])
    third.use_cache(root)
    assert shard.stat().st_size == 3 * 20 * 40 * 53 * 3
    assert np.array_equal(third.cache.frames(0), second.cache.frames(0))
    assert sorted(p.name for p in root.iterdir() if ".tmp-" in p.name) == []


def test_concurrent_writers_leave_one_valid_cache(videos: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "cache"
    results: list[object] = []

    def build() -> None:
        results.append(clip_cache.open_or_build(dataset(videos), root))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len({c.directory for c in results}) == 1  # type: ignore[attr-defined]
    caches = [p for p in root.iterdir() if p.is_dir()]
    assert len(caches) == 1  # one cache, no temporary directories left
    cache = results[0]
    with pytest.raises(clip_cache.CachedFailure, match=r"broken\.mp4"):
        cache.frames(3)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("argv", "expected"), [
    (["data.decoder=ffmpeg"], "error: data.decoder: unknown value 'ffmpeg'"),
    (["data.decode_device=tpu"], "error: data.decode_device: unknown value 'tpu'"),
    (["data.decode_device=cuda", "data.decoder=pyav"], "error: data.decode_device: 'cuda' "),
    (["data.cache=true", "data.cache_dir=ROOT/cache"], "error: data.cache_dir: "),
])
def test_bad_decoder_settings_are_one_line(argv: list[str], expected: str, tree: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from search.run import main

    db = tmp_path / "none.db"
    argv = [a.replace("ROOT", str(tree)) for a in argv]
    assert main(["study=smoke", "data=folder", f"data.root={tree}", f"storage=sqlite:///{db}",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert not db.exists()


def test_decoder_and_cache_settings_do_not_block_resuming(tree: Path) -> None:
    from search.design.composing import compose, to_run_config
    from search.design.resuming import check_resumable, snapshot
    from search.design.studies import build_design

    def current(*extra: str) -> dict:
        cfg = to_run_config(compose(["study=smoke", "data=folder", f"data.root={tree}", *extra]))
        build_design(cfg)
        return snapshot(cfg)

    stored = json.dumps(current())
    assert check_resumable(stored, current("data.decoder=pyav", "data.cache=true",
                                           "data.cache_dir=/elsewhere"), "smoke") is True


# --- through the real-video study path (slow) ------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/<class>/<video>.mp4: 3 classes x 4 small mp4s, plus one corrupt file."""
    root = tmp_path / "clips"
    for label, name in enumerate(CLASSES):
        for j in range(4):
            write_video(root / name / f"{name}_{j}.mp4", value=60 * label + 5 * j)
    (root / "run" / "run_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return root


@pytest.mark.slow
def test_video_study_with_the_clip_cache_and_without_torchcodec(runner, tree: Path,
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """study=smoke on mp4s with data.cache=true, where torchcodec fails to load (as the CUDA
    wheel does on a CPU-only torch): one notice, PyAV decodes, the cache is written, and every
    trial completes with the broken video counted and its hardware on record."""
    shadow = tmp_path / "shadow" / "torchcodec"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise OSError("libnvrtc.so.13: cannot open shared object file")\n')
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))  # after the checkout, before site
    db, cache_dir = runner.cwd / "video.db", tmp_path / "clip-cache"
    out = runner.run("data=folder", f"data.root={tree}", "data.crop_size=32", "data.resize=32",
                     "data.num_workers=1", "data.cache=true", f"data.cache_dir={cache_dir}",
                     f"storage=sqlite:///{db}", timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    notices = [line for line in out.stderr.splitlines() if line.startswith("notice:")]
    assert notices == ["notice: data.decoder=auto: torchcodec cannot be loaded (OSError: "
                       "libnvrtc.so.13: cannot open shared object file); decoding with PyAV"]
    assert [s for (s,) in query(db, "SELECT state FROM trials")] == ["COMPLETE"] * 4
    skipped = query(db, "SELECT value FROM epoch_metrics WHERE name = 'data/skipped'")
    assert [v for (v,) in skipped] == [1.0] * 4
    caches = sorted(p for p in cache_dir.iterdir() if p.is_dir())
    # per data draw (each seed holds out its own val videos): the training videos (every
    # frame) and the validation clips
    draws = {d for (d,) in query(db, "SELECT data_seed FROM trials")}
    assert len(draws) == 2 and len(caches) == 2 * len(draws)
    modes = {json.loads((c / "index.json").read_text())["mode"] for c in caches}
    assert modes == {"random", "center"}
    for (resources,) in query(db, "SELECT resources_json FROM trials"):
        record = json.loads(resources)
        assert record["device"] == "cpu" and record["node_id"] and record["hostname"]
        assert record["torch_version"] == torch.__version__ and record["cpus"] == 1

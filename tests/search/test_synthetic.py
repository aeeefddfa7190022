"""Synthetic video: shapes, determinism, what the labels mean, and that frames alone do not tell."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from search.data.synthetic import (
    TASKS,
    ClipSet,
    SyntheticConfig,
    default_cpu_config,
    generate,
    make_synthetic,
)

SMALL = {"clip_len": 8, "size": 16, "object_size": 3, "target_size": 8, "n_train": 48,
         "n_val": 16}


@pytest.mark.parametrize("task", TASKS)
def test_shapes_dtypes_and_labels(task: str) -> None:
    cfg = dataclasses.replace(default_cpu_config(task), **SMALL)
    train, val = make_synthetic(cfg, seed=0)
    assert isinstance(train, ClipSet) and len(train) == 48 and len(val) == 16
    assert train.clips.shape == (48, 3, 8, 16, 16) and train.clips.dtype == torch.float32
    assert train.labels.dtype == torch.int64
    assert int(train.labels.min()) >= 0 and int(train.labels.max()) < cfg.num_classes
    clip, label = train[3]
    assert clip.shape == (3, 8, 16, 16) and int(label) == int(train.labels[3])
    x, y = next(iter(torch.utils.data.DataLoader(train, batch_size=8)))
    assert x.shape == (8, 3, 8, 16, 16) and y.shape == (8,)


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_in_the_seed(task: str) -> None:
    cfg = dataclasses.replace(default_cpu_config(task), **SMALL)
    a, _ = make_synthetic(cfg, seed=1)
    b, _ = make_synthetic(cfg, seed=1)
    c, _ = make_synthetic(cfg, seed=2)
    assert torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.clips, c.clips)
    state = torch.get_rng_state()
    make_synthetic(cfg, seed=1)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_invalid_configs_name_the_field() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(task="motion", num_classes=3).validate()
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(task="long_order", num_classes=4).validate()
    with pytest.raises(ValueError, match="task"):
        SyntheticConfig(task="colour").validate()
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(task="rotation", num_classes=4).validate()


def test_motion_labels_are_directions_and_reverses() -> None:
    """Without clutter or noise, frame t+1 is frame t shifted one pixel in the label direction."""
    cfg = SyntheticConfig(task="motion", num_classes=4, clip_len=6, size=16, object_size=3,
                          n_objects=2, n_distractors=0, noise=0.0, speed=1.0)
    clips = generate(cfg, 32, seed=0)
    # angle 2*pi*k/4: k=0 -> +x, 1 -> +y, 2 -> -x, 3 -> -y (rows grow downwards).
    shifts = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}
    for clip, label in zip(clips.clips, clips.labels.tolist(), strict=True):
        dy, dx = shifts[label]
        moved = torch.roll(clip[:, :-1], shifts=(dy, dx), dims=(-2, -1))
        assert torch.equal(moved, clip[:, 1:])
        # Played backwards, the clip shows the opposite class (k + K/2).
        back = clip.flip(1)
        r_dy, r_dx = shifts[(label + 2) % 4]
        assert torch.equal(torch.roll(back[:, :-1], shifts=(r_dy, r_dx), dims=(-2, -1)),
                           back[:, 1:])


@pytest.mark.parametrize(("clip_len", "min_gap"), [(8, 2), (16, 6)])
def test_long_order_events_are_apart(clip_len: int, min_gap: int) -> None:
    cfg = SyntheticConfig(task="long_order", num_classes=2, clip_len=clip_len, size=16,
                          target_size=8, n_distractors=0, noise=0.0, event_len=2, slot_jitter=1)
    clips = generate(cfg, 64, seed=0)
    shown = clips.clips.flatten(3).amax(dim=(1, 3)) > 0  # (N, T): a frame shows an event
    assert (shown.sum(1) == 4).all()  # two events of two frames each, never overlapping
    for row in shown:
        frames = torch.nonzero(row).flatten().tolist()
        assert frames[2] - frames[0] >= min_gap  # onsets at least min_gap frames apart


def _time_average_accuracy(cfg: SyntheticConfig) -> float:
    """Accuracy of a logistic regression on each clip's time-averaged pixels."""
    train, val = make_synthetic(cfg, seed=0)
    x_train = train.clips.mean(2).flatten(1).numpy()  # (N, 3*H*W): order of frames discarded
    x_val = val.clips.mean(2).flatten(1).numpy()
    clf = LogisticRegression(max_iter=300, C=0.1).fit(x_train, train.labels.numpy())
    return float((clf.predict(x_val) == val.labels.numpy()).mean())


@pytest.mark.parametrize("task", ["motion", "rotation", "long_order"])
def test_order_free_classifier_is_at_chance(task: str) -> None:
    cfg = SyntheticConfig(task=task, num_classes=2, clip_len=8, size=16, object_size=3,
                          target_size=8, n_train=600, n_val=600)
    assert abs(_time_average_accuracy(cfg) - 0.5) < 0.07


def test_appearance_is_solvable_without_time() -> None:
    cfg = SyntheticConfig(task="appearance", num_classes=4, clip_len=8, size=16, target_size=10,
                          n_distractors=1, n_train=600, n_val=400)
    assert _time_average_accuracy(cfg) > 0.5  # chance 0.25

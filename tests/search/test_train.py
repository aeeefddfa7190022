"""The training loop: metrics, determinism, NaN handling, resume, and 2D vs 3D on motion."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from arch_space.builder import build_network
from arch_space.presets import uniform
from search.data.synthetic import ClipSet, SyntheticConfig, make_synthetic
from search.train import TrainConfig, TrainResult, train

KEYS = {"train/loss", "train/acc1", "val/loss", "val/acc1", "val/acc5", "lr", "epoch_time_s"}
TINY_NET = {"widths": (8, 16, 16, 32), "depths": (1, 1, 1, 1), "stem_width": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_data(n_train: int = 64, n_val: int = 32, **kw) -> tuple[ClipSet, ClipSet]:
    cfg = SyntheticConfig(task="motion", clip_len=4, size=16, object_size=3, target_size=6,
                          n_train=n_train, n_val=n_val, **kw)
    return make_synthetic(cfg, seed=0)


def tiny_model(kind: str = "3d", num_classes: int = 4, clip_len: int = 4, size: int = 16,
               seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_network(uniform(kind, **TINY_NET, num_classes=num_classes, clip_len=clip_len,
                                 crop_size=size, temporal_downsample=clip_len >= 8))


def metrics_without_time(result: TrainResult) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in result.history]


CFG = TrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_epochs=1)


def test_reports_every_epoch_with_contract_keys() -> None:
    train_set, val_set = tiny_data()
    seen: list[tuple[int, dict[str, float]]] = []
    result = train(tiny_model(), train_set, val_set, CFG, seed=0,
                   on_epoch=lambda epoch, m: seen.append((epoch, m)))
    assert result.status == "ok" and result.reason is None
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    for _, m in seen:
        assert set(m) >= KEYS
        assert all(0.0 <= m[k] <= 1.0 for k in ("train/acc1", "val/acc1", "val/acc5"))
        assert m["val/acc5"] >= m["val/acc1"]
    assert result.final == result.history[-1] and len(result.history) == 3
    # Warm-up over the first epoch, then cosine decay: epoch 2 starts at the peak.
    assert seen[1][1]["lr"] == pytest.approx(CFG.lr, rel=0.05)
    assert seen[2][1]["lr"] < seen[1][1]["lr"]


def test_same_seed_same_metrics() -> None:
    train_set, val_set = tiny_data()
    first = train(tiny_model(seed=1), train_set, val_set, CFG, seed=5)
    second = train(tiny_model(seed=1), train_set, val_set, CFG, seed=5)
    assert metrics_without_time(first) == metrics_without_time(second)
    other = train(tiny_model(seed=1), train_set, val_set, CFG, seed=6)
    assert metrics_without_time(other) != metrics_without_time(first)


def test_dataset_without_tensors_goes_through_a_dataloader() -> None:
    train_set, val_set = tiny_data()
    wrapped = torch.utils.data.TensorDataset(train_set.clips, train_set.labels)
    first = train(tiny_model(), wrapped, val_set, CFG, seed=0)
    second = train(tiny_model(), wrapped, val_set, CFG, seed=0)
    assert first.status == "ok"
    assert metrics_without_time(first) == metrics_without_time(second)


def test_huge_learning_rate_ends_with_nan_status() -> None:
    train_set, val_set = tiny_data()
    cfg = dataclasses.replace(CFG, lr=1e6, optimizer="sgd", grad_clip=None, warmup_epochs=0)
    result = train(tiny_model(), train_set, val_set, cfg, seed=0)
    assert result.status == "nan"
    assert "non-finite" in result.reason and "\n" not in result.reason


class InfAfter(nn.Module):
    """Returns inf logits from the ``n``-th forward call on."""

    def __init__(self, inner: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(x)
        return out + float("inf") if self.calls >= self.n else out


def test_injected_inf_stops_cleanly_and_keeps_history() -> None:
    train_set, val_set = tiny_data()
    steps_per_epoch = len(train_set) // CFG.batch_size
    val_calls = 1  # 32 val clips fit in one eval batch
    model = InfAfter(tiny_model(), n=steps_per_epoch + val_calls + 2)  # in epoch 2, step 2
    epochs: list[int] = []
    result = train(model, train_set, val_set, CFG, seed=0, on_epoch=lambda e, m: epochs.append(e))
    assert result.status == "nan"
    assert "epoch 2 step 2" in result.reason
    assert epochs == [1] and len(result.history) == 1 and result.final == result.history[0]


def test_resume_matches_an_uninterrupted_run() -> None:
    train_set, val_set = tiny_data()
    straight = train(tiny_model(), train_set, val_set, CFG, seed=3)

    saved: list[dict] = []
    saving = train(tiny_model(), train_set, val_set, CFG, seed=3, save_checkpoint=saved.append)
    assert [c["epoch"] for c in saved] == [1, 2, 3]
    # Resume from the end of epoch 2 into a freshly built (differently initialised) model.
    reported: list[int] = []
    resumed = train(tiny_model(seed=99), train_set, val_set, CFG, seed=3, checkpoint=saved[1],
                    on_epoch=lambda e, m: reported.append(e))
    assert reported == [3]
    assert metrics_without_time(resumed) == metrics_without_time(straight)
    assert metrics_without_time(saving) == metrics_without_time(straight)


def test_motion_needs_time_2d_near_chance_3d_above() -> None:
    """A small motion task: every frame is uninformative, so only the 3D net learns it (~10 s)."""
    cfg = SyntheticConfig(task="motion", num_classes=2, clip_len=8, size=24, object_size=4,
                          n_objects=3, n_distractors=2, noise=0.1, n_train=384, n_val=256)
    train_set, val_set = make_synthetic(cfg, seed=0)
    tcfg = TrainConfig(epochs=5, batch_size=32, lr=3e-3)
    acc = {}
    for kind in ("2d", "3d"):
        model = tiny_model(kind, num_classes=2, clip_len=8, size=24)
        acc[kind] = train(model, train_set, val_set, tcfg, seed=0).final["val/acc1"]
    assert abs(acc["2d"] - 0.5) < 0.1, acc
    assert acc["3d"] > 0.75, acc

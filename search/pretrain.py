"""2D pretraining for inflation: images -> all-2D network -> inflated video network -> fine-tune.

I3D (Carreira & Zisserman 2017) starts a video network from a 2D network trained on images.
Here the image set is built in: single frames of the synthetic ``appearance`` task (handwritten
digits from scikit-learn among clutter), so the whole route runs offline on a CPU:

    spec = presets.uniform("3d", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), ...)
    sd_2d = pretrain_2d(spec, seed=0)                    # trains as_2d(spec) on digit frames
    model = build_inflated(spec, sd_2d)                  # arch_space.inflate
    train(model, train_set, val_set, cfg, seed=0)        # fine-tune on video

The compute control (``shuffle_labels=True``): the same images, steps and schedule with the image
labels permuted, so an inflated network gets the pretraining compute without the information
(Zhang et al. 2017's random labels); inflated minus control is the effect of what was learned.

A torchvision 2D ResNet checkpoint works too: ``load_2d_state_dict(path)`` and
``layout="torchvision"``. ``python -m search.pretrain`` runs pretrain -> inflate -> fine-tune
against the same network from scratch and prints both accuracies.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from arch_space.spec import ArchSpec, BlockSpec, StageSpec, StemSpec
from search.data.synthetic import ClipSet, SyntheticConfig, make_synthetic
from search.results.metrics import VAL_ACC1
from search.train import TrainConfig, TrainResult, train

# Pretraining on single frames: more images per second than clips, so more epochs.
PRETRAIN_CONFIG = TrainConfig(epochs=6, batch_size=64, lr=3e-3, warmup_epochs=0.5)
SHUFFLE_SEED = 7919  # offsets the seed of the label permutation from the image set's


def as_2d(spec: ArchSpec, *, num_classes: int = 10) -> ArchSpec:
    """The all-2D image network whose weights inflate into ``spec``.

    Same stem width and spatial kernel, widths, depths, block type and spatial strides; every
    temporal extent and temporal stride 1; one-frame clips; ``num_classes`` outputs.
    """
    stem = StemSpec(kind="2d", width=spec.stem.width, t_kernel=1, t_stride=1,
                    s_kernel=spec.stem.s_kernel, s_stride=spec.stem.s_stride)
    stages = tuple(StageSpec(stage.width, tuple(BlockSpec(kind="2d", t_kernel=1, t_stride=1,
                                                          s_stride=b.s_stride)
                                                for b in stage.blocks))
                   for stage in spec.stages)
    return dataclasses.replace(spec, stem=stem, stages=stages, clip_len=1,
                               num_classes=num_classes)


def image_set(size: int, n_train: int, n_val: int, seed: int) -> tuple[ClipSet, ClipSet]:
    """Digit images with clutter as one-frame clips ``(N, 3, 1, H, W)``, labels 0..9."""
    cfg = SyntheticConfig(task="appearance", clip_len=1, size=size, num_classes=10,
                          n_train=n_train, n_val=n_val)
    return make_synthetic(cfg, seed=seed)


def shuffled_labels(images: ClipSet, seed: int) -> ClipSet:
    """The same images with their labels permuted (deterministic in ``seed``): every class keeps
    its count, but a label says nothing about its image."""
    gen = torch.Generator().manual_seed(seed + SHUFFLE_SEED)
    order = torch.randperm(len(images), generator=gen)
    return ClipSet(images.clips, images.labels[order], images.num_classes)


def pretrain_2d(spec: ArchSpec, *, seed: int, images: tuple[ClipSet, ClipSet] | None = None,
                cfg: TrainConfig = PRETRAIN_CONFIG, n_images: int = 4096,
                image_seed: int | None = None, shuffle_labels: bool = False) -> dict[str, Tensor]:
    """Train ``as_2d(spec)`` on images and return its state dict (vidarch layout).

    Args:
        spec: the video network the weights are meant for.
        seed: seeds the initialisation and the data order (and the image set by default).
        images: ``(train, val)`` one-frame clip sets; default: ``image_set`` at ``spec.crop_size``.
        cfg: training settings for the images.
        n_images: training images when ``images`` is not given.
        image_seed: draws the image set when ``images`` is not given; None: ``seed``.
        shuffle_labels: the compute control: train on ``shuffled_labels`` of the training
            images (same images, steps and schedule; validation keeps the true labels).
    """
    from arch_space.builder import build_network

    train_images, val_images = images or image_set(
        spec.crop_size, n_images, 512, seed if image_seed is None else image_seed)
    if shuffle_labels:
        train_images = shuffled_labels(train_images, seed)
    spec_2d = as_2d(spec, num_classes=train_images.num_classes)
    torch.manual_seed(seed)
    model = build_network(spec_2d)
    result = train(model, train_images, val_images, cfg, seed=seed)
    if result.status != "ok":
        raise RuntimeError(f"2D pretraining failed: {result.reason}")
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_2d_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A 2D ResNet state dict from a file: bare, or under ``state_dict``/``model``; no ``module.``."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return {k.removeprefix("module."): v for k, v in data.items()}


def finetune_inflated(spec: ArchSpec, state_dict_2d: dict[str, Tensor], train_set: ClipSet,
                      val_set: ClipSet, cfg: TrainConfig, *, seed: int,
                      layout: str = "vidarch") -> TrainResult:
    """Inflate ``state_dict_2d`` into ``spec`` (a new head for its classes) and fine-tune it."""
    from arch_space.inflate import build_inflated

    torch.manual_seed(seed)
    model = build_inflated(spec, state_dict_2d, layout=layout)
    return train(model, train_set, val_set, cfg, seed=seed)


def main() -> None:
    """Pretrain -> inflate -> fine-tune vs from scratch, on a small synthetic training set."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--task", default="appearance")
    parser.add_argument("--kind", default="3d", help="conv kind of the video network")
    parser.add_argument("--n-train", type=int, default=128, help="video clips to fine-tune on")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="write the 2D state dict here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from arch_space.builder import build_network
    from arch_space.presets import uniform
    from search.data.synthetic import default_cpu_config

    data_cfg = dataclasses.replace(default_cpu_config(args.task), n_train=args.n_train)
    spec = uniform(args.kind, widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), stem_width=16,
                   num_classes=data_cfg.num_classes, clip_len=data_cfg.clip_len,
                   crop_size=data_cfg.size)
    train_set, val_set = make_synthetic(data_cfg, seed=args.seed)
    cfg = TrainConfig(epochs=args.epochs)
    state_dict_2d = pretrain_2d(spec, seed=args.seed)
    if args.save:
        torch.save(state_dict_2d, args.save)
    inflated = finetune_inflated(spec, state_dict_2d, train_set, val_set, cfg, seed=args.seed)
    torch.manual_seed(args.seed)
    scratch = train(build_network(spec), train_set, val_set, cfg, seed=args.seed)
    print(f"{args.task} ({args.n_train} clips, seed {args.seed}): "
          f"inflated val/acc1 {inflated.final[VAL_ACC1]:.3f}, "
          f"scratch val/acc1 {scratch.final[VAL_ACC1]:.3f}")


if __name__ == "__main__":
    main()

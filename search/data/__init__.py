"""Datasets: built-in synthetic video (``synthetic``) and real video trees on PyAV (``video``).

``search.data.video`` imports PyAV; it is loaded on first use of its names here.
"""

from __future__ import annotations

from typing import Any

from search.data.synthetic import ClipSet, SyntheticConfig, default_cpu_config, make_synthetic

_VIDEO_NAMES = ("ClipSampling", "VideoDataset", "csv_dataset", "folder_dataset", "json_dataset")

__all__ = ["ClipSet", "SyntheticConfig", "default_cpu_config", "make_synthetic", *_VIDEO_NAMES]


def __getattr__(name: str) -> Any:
    if name in _VIDEO_NAMES:
        from search.data import video

        return getattr(video, name)
    raise AttributeError(f"module 'search.data' has no attribute {name!r}")

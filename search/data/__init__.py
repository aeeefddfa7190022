"""Datasets: built-in synthetic video (``synthetic``) and real video trees on PyAV (``video``)."""

from search.data.synthetic import ClipSet, SyntheticConfig, default_cpu_config, make_synthetic

__all__ = ["ClipSet", "SyntheticConfig", "default_cpu_config", "make_synthetic"]

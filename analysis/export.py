"""Exporting analysis frames to CSV and Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pandas as pd


def to_csv(df: pd.DataFrame, path: str | Path | None = None) -> str | None:
    """Write ``df`` as CSV to ``path``; return the CSV text when ``path`` is None."""
    return df.to_csv(path, index=False)


def to_parquet(df: pd.DataFrame, path: str | Path | BinaryIO) -> None:
    """Write ``df`` as Parquet (pyarrow); object columns of mixed types become strings."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col].dropna()}
            if len(kinds) > 1:
                out[col] = out[col].astype("string")
    out.to_parquet(path, index=False, engine="pyarrow")


def export(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` by the file's suffix: ``.csv`` or ``.parquet``."""
    path = Path(path)
    if path.suffix == ".csv":
        to_csv(df, path)
    elif path.suffix in (".parquet", ".pq"):
        to_parquet(df, path)
    else:
        raise ValueError(f"{path}: export writes .csv or .parquet, got {path.suffix!r}")
    return path

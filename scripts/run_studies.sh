#!/usr/bin/env bash
# The commands that produced the database behind docs/findings.md (2 CPU cores, no GPU).
# Each is resumable: rerunning continues where it stopped. Then `make findings`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DB=${DB:-sqlite:///studies.db}
$PY -m search.run study=bottom_vs_top 'study.seeds=[0,1,2,3,4]' storage=$DB
$PY -m search.run study=conv_kinds storage=$DB
$PY -m search.run study=temporal_extent storage=$DB
$PY -m search.run study=inflation storage=$DB
# small data: 1/8 of the clips, 8x the epochs (the same number of optimizer steps)
$PY -m search.run study=inflation study.name=inflation_small data.n_train=128 train.epochs=32 storage=$DB

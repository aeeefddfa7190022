"""Write a SYNTHETIC benchmark table for ``python -m search.replay`` (a stand-in for the real one).

The trials are made up (``analysis.synthetic.exhaustive_trials``: a placement model of
accuracy, slower learning with more temporal layers, epoch times growing with MACs) but they
go the real way: every cell of the study preset's exhaustive grid (``study=bench_video``:
``design=space`` with ``sampler=grid``) x every seed is written into a results database under
the preset's own config snapshot, then exported by ``search.replay_table.study_table`` — so
arch_ids, labels and searched parameters are those the live study stores. Its provenance says
``synthetic: true`` and the replay prints SYNTHETIC in its header.

Usage::

    python benchmarks/synthetic_bench.py                       # the shipped stand-in
    python benchmarks/synthetic_bench.py --out small.parquet study.seeds=[0,1] train.epochs=4

(A script, not a package module: it joins ``analysis`` and ``search.run``, and the layering
contract keeps ``analysis`` free of the runner's imports.)
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.synthetic import bulk_write_trials, estimated_cost, exhaustive_trials  # noqa: E402
from search.design.composing import compose, to_run_config  # noqa: E402
from search.design.resuming import snapshot  # noqa: E402
from search.design.studies import build_design  # noqa: E402
from search.replay_table import (  # noqa: E402
    BenchTable,
    git_sha,
    machine,
    now_utc,
    study_table,
    write_table,
)
from search.results.store import open_engine  # noqa: E402

DEFAULT_OUT = ROOT / "search" / "bench" / "bench_video_synthetic.parquet"


def bench_table(out: str | Path, overrides: Sequence[str] = ("study=bench_video",), *,
                rng_seed: int = 0) -> BenchTable:
    """Write the synthetic table of a study preset's exhaustive grid to ``out``; return it."""
    cfg: Any = to_run_config(compose(list(overrides)))
    design = build_design(cfg)
    trials = exhaustive_trials(design.cells, seeds=design.seeds,
                               n_epochs=int(cfg.train.epochs or 1), rng_seed=rng_seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'synthetic.db'}"
        engine = open_engine(url, create=True)
        bulk_write_trials(engine, cfg.study.name, trials, kind="grid", config=snapshot(cfg),
                          cost_of=estimated_cost)
        engine.dispose()
        table = study_table(url, cfg.study.name)
    table.provenance.update(
        synthetic=True, source="analysis.synthetic.exhaustive_trials",
        description=("SYNTHETIC: made-up accuracies and epoch times (analysis.synthetic), not "
                     "training; a stand-in until the real benchmark study has run"),
        command=shlex.join(["python", "benchmarks/synthetic_bench.py",
                            f"--rng-seed={rng_seed}", *overrides]),
        git_sha=git_sha(), date=now_utc(),
        hardware={"generated_on": machine()})
    write_table(table, out)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``[--out TABLE] [--rng-seed N] [search.run overrides ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the table (%(default)s)")
    parser.add_argument("--rng-seed", type=int, default=0, help="made-up noise (%(default)s)")
    parser.add_argument("overrides", nargs="*", help="search.run overrides (study=bench_video "
                        "first by default)")
    args = parser.parse_args(argv)
    overrides = args.overrides
    if not any(o.startswith("study=") for o in overrides):
        overrides = ["study=bench_video", *overrides]
    table = bench_table(args.out, overrides, rng_seed=args.rng_seed)
    shown = Path(args.out).resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    print(f"wrote {shown} (SYNTHETIC): {table.networks} networks × {len(table.seeds)} seeds "
          f"× {table.epochs} epochs; replay it: python -m search.replay {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replay searchers against a finished study: compare them in seconds instead of hours.

    python -m search.replay [TABLE] [--searchers grid,random,tpe,nsga2,asha] [--repetitions 20]
                            [--workers 2] [--budget N] [--seed 0] [--jobs 2] [--figure PATH]
    python -m search.replay --db studies.db --study NAME [...]
    python -m search.replay export --db studies.db --study NAME --out TABLE

A *table* (``search.replay_table``) holds every epoch of every (network, seed) of a study. Each
searcher runs ``--repetitions`` times with the live driver's own searcher and scheduler code
(``search.replay_sim``): proposals are answered from the table on a simulated clock with
``--workers`` trials at once. The report (``search.replay_report``) gives, per searcher, the
hypervolume of the front it found against simulated time and trials, the trials it needed for
95 % of the exhaustive hypervolume, and ASHA's saving. Without TABLE, the shipped benchmark is
used (``DEFAULT_TABLES``: the real one once it exists, until then a synthetic stand-in).

Exit status: 0 done; 2 bad input (one line naming it: an unknown searcher, a missing table, a
database without per-epoch metrics, ...); 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.replay_table import ReplayError

BENCH_DIR = Path(__file__).resolve().parent / "bench"
# The shipped tables, preferred first: the measured benchmark, else its synthetic stand-in.
DEFAULT_TABLES: tuple[Path, ...] = (BENCH_DIR / "bench_video.parquet",
                                    BENCH_DIR / "bench_video_synthetic.parquet")
DEFAULT_SEARCHERS = "grid,random,tpe,nsga2,asha"

_BENCH: Any = None  # the table of this process (inherited by forked job workers)


def default_table() -> Path:
    """The first shipped table that exists (the last candidate when none does)."""
    return next((p for p in DEFAULT_TABLES if p.is_file()), DEFAULT_TABLES[-1])


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``ReplayError``), like every other bad input."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ReplayError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m search.replay", description="Replay searchers against a benchmark "
        "table (or a results database) on a simulated clock and compare their efficiency.",
        epilog="Export a table: python -m search.replay export --db DB --study NAME --out TABLE")
    parser.add_argument("table", nargs="?", help=f"a .parquet / .csv.gz table (default: "
                        f"{default_table().relative_to(BENCH_DIR.parents[1])})")
    parser.add_argument("--db", help="replay a results database instead (path or URL)")
    parser.add_argument("--study", help="the study of --db")
    parser.add_argument("--searchers", default=DEFAULT_SEARCHERS,
                        help="comma-separated: grid, random, tpe, nsga2, asha (random with "
                        "ASHA in MAC bands), SAMPLER+asha (default: %(default)s)")
    parser.add_argument("--repetitions", type=int, default=20, help="runs per searcher (%(default)s)")
    parser.add_argument("--workers", type=int, default=2,
                        help="trials at once on the simulated clock (%(default)s)")
    parser.add_argument("--budget", type=int, default=None,
                        help="proposals per run (default: the number of networks)")
    parser.add_argument("--seed", type=int, default=0,
                        help="repetition r uses sampler seed SEED + r (%(default)s)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes running repetitions (%(default)s)")
    parser.add_argument("--figure", help="write the plotly figure here (.html, or .png/.svg "
                        "with kaleido)")
    return parser


def _export(argv: Sequence[str]) -> int:
    parser = _Parser(prog="python -m search.replay export",
                                     description="Write a study's per-epoch results as a table.")
    parser.add_argument("--db", required=True, help="results database (path or URL)")
    parser.add_argument("--study", required=True, help="the study to export")
    parser.add_argument("--out", required=True, help="the table to write (.parquet / .csv.gz)")
    parser.add_argument("--note", default=None, help="how the study was run (its commands, "
                        "machine, dates), kept in the provenance as written")
    args = parser.parse_args(argv)
    from search.replay_table import git_sha, machine, now_utc, study_table, write_table

    if not args.out.endswith((".parquet", ".csv.gz")):
        raise ReplayError(f"--out: {args.out}: a table is a .parquet or .csv.gz file")
    table = study_table(args.db, args.study)
    command = shlex.join(["python", "-m", "search.replay", "export", *argv])
    table.provenance.update(command=command, exported_git_sha=git_sha(),
                            date=now_utc(),
                            hardware={**table.provenance.get("hardware", {}),
                                      "exported_on": machine()})
    if args.note:
        table.provenance["note"] = args.note
    path = write_table(table, args.out)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB): {table.networks} networks × "
          f"{len(table.seeds)} seeds × {table.epochs} epochs, {len(table.frame)} rows")
    return 0


def _one(job: tuple[Any, int, int, int, int]) -> Any:
    from search.replay_sim import replay

    searcher, repetition, workers, budget, seed = job
    return replay(_BENCH, searcher, repetition, workers=workers, budget=budget, seed=seed)


def run_all(bench: Any, searchers: Sequence[Any], repetitions: int, *, workers: int,
            budget: int, seed: int, jobs: int) -> list[Any]:
    """Every (searcher, repetition), in ``jobs`` processes (forked: the table is shared)."""
    global _BENCH
    _BENCH = bench
    bench.check(searchers)  # builds the space / the grid once, before the workers fork
    work = [(s, r, workers, budget, seed) for s in searchers for r in range(repetitions)]
    if jobs <= 1 or len(work) <= 1:
        return [_one(w) for w in work]
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        return pool.map(_one, work, chunksize=max(1, len(work) // (jobs * 4)))


def replay_main(argv: Sequence[str], out: Any = None) -> int:
    """The replay command (``argv`` without the program name)."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    from search.replay_sim import Bench, parse_searchers
    from search.replay_table import read_table, study_table

    searchers = parse_searchers(args.searchers)
    for key in ("repetitions", "workers", "jobs"):
        if getattr(args, key) < 1:
            raise ReplayError(f"--{key}: must be >= 1, got {getattr(args, key)}")
    if args.budget is not None and args.budget < 1:
        raise ReplayError(f"--budget: must be >= 1, got {args.budget}")
    if args.figure and not args.figure.endswith((".html", ".png", ".svg")):
        raise ReplayError(f"--figure: {args.figure}: write .html, .png or .svg")
    if args.db or args.study:
        if args.table:
            raise ReplayError("table: give a TABLE or --db/--study, not both")
        if not (args.db and args.study):
            raise ReplayError("--study: replaying a database needs both --db and --study"
                              if args.db else "--db: --study needs the database (--db)")
        table = study_table(args.db, args.study)
    else:
        table = read_table(args.table or default_table())
    t0 = time.monotonic()
    bench = Bench(table)
    bench.check(searchers)  # the space or the grid builds (once, before the workers fork)
    label = " (SYNTHETIC: made-up accuracies, not training)" if table.synthetic else ""
    print(f"{table.provenance.get('study', '?')}: {bench.networks} networks × "
          f"{len(bench.seeds)} seeds × {bench.epochs} epochs{label} · {table.source}",
          file=out)
    budget = args.budget or bench.networks
    runs = run_all(bench, searchers, args.repetitions, workers=args.workers, budget=budget,
                   seed=args.seed, jobs=args.jobs)
    from search.replay_report import figure, print_report, summarise

    reports, times = summarise(bench, runs, [s.name for s in searchers])
    print_report(bench, reports, times, stream=out, budget=budget, workers=args.workers)
    print(f"\n{len(searchers)} searcher(s) × {args.repetitions} repetitions replayed in "
          f"{time.monotonic() - t0:.1f} s ({args.jobs} process(es))", file=out)
    if args.figure:
        fig = figure(bench, reports, times)
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        try:
            if args.figure.endswith(".html"):
                fig.write_html(args.figure, include_plotlyjs="cdn")
            else:
                fig.write_image(args.figure)
        except Exception as exc:  # kaleido missing or without a browser, a read-only folder
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReplayError(f"--figure: cannot write {args.figure}: {first}") from None
        print(f"figure: {args.figure}", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["export"]:
            return _export(argv[1:])
        return replay_main(argv)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

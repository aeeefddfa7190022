"""Entry point: ``python -m search.run study=bottom_vs_top storage=sqlite:///studies.db key=value``.

The config is composed (``search.design.composing``: Hydra, typed by ``search.design.config``), the study's
design is built and checked, and only then is the database opened (created if missing), the
stored study checked for resuming (``search.design.resuming``) and Ray started. Bad input is one line
on stderr naming the key, exit status 2, and the database untouched. Ctrl-C is owned by
``search.interrupts``.

One driver runs a study at a time (a lease in the database, ``search.results.guard``); transient
database errors are retried for a bounded time (``search.results.retry``). Every error is one line on
stderr; ``VIDARCH_DEBUG=1`` adds the traceback.

Exit status: 0 every trial of the study completed (or was pruned); 1 some trial failed, or the
database failed mid-run (past the retries); 2 bad input, storage that refuses writes, or a study
another driver is running; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import interrupts
from search.design.composing import (
    GROUPS,
    ConfigError,
    _compose,
    options,
    studies_of,
    to_run_config,
)
from search.design.resuming import check_resumable, snapshot

if TYPE_CHECKING:
    from search.results.guard import StudyGuard

USAGE = """usage: python -m search.run [study=NAME|PATH.yaml] [storage=URL] [key=value ...] [--cfg]
                           [--dry-run] [--help]

  study=    {studies}   (default bottom_vs_top), or a path to your own study file
  data=     {data}
  train=    {train}
  hardware= {hardware}
  tracking= {tracking}   (export to MLflow: tracking_uri=URI; extras: pip install 'vidarch[mlflow]')
  storage=  SQLAlchemy URL of the results database (default sqlite:///studies.db)

Any field can be overridden with a dotted key, e.g. train.epochs=4 study.seeds=[0,1]
hardware.cpus_per_trial=2. --cfg prints the composed config and exits; --dry-run prints the
study's arms (widths, MACs, params, matched-compute scale) and exits, before Ray or any training.
A study that lists study.variants runs one study per variant, named <study.name>.<label>
(e.g. placement_crossover.scale4). Rerunning the same command resumes the study."""



INTERRUPTED_LINE = "interrupted: stopped cleanly; rerun the same command to resume"
_told: list[bool] = []  # whether INTERRUPTED_LINE was printed (once per process)


def _say_interrupted() -> int:
    """Print ``INTERRUPTED_LINE`` (once) and return 130."""
    if not _told:
        _told.append(True)
        print(INTERRUPTED_LINE, file=sys.stderr)
    return 130


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version() -> str:
    try:
        return metadata.version("vidarch")
    except metadata.PackageNotFoundError:
        return "0.1.0+local"


def main(argv: list[str] | None = None) -> int:
    """Run a study; return the exit status (130 after Ctrl-C, whenever it comes; an unexpected
    error is one line and exit 1, its traceback with VIDARCH_DEBUG=1)."""
    _told.clear()
    with interrupts.owned() as sigint:
        code = _guarded_main(argv, sigint)
        if code != 130 and interrupts.requested():  # a Ctrl-C swallowed on its way (see there)
            return _say_interrupted()
        return code


def _guarded_main(argv: list[str] | None, sigint: Any) -> int:
    try:
        return _main(argv, sigint=sigint)
    except KeyboardInterrupt:
        with contextlib.suppress(KeyboardInterrupt):
            _shutdown_ray()
        return _say_interrupted()
    except Exception as exc:  # a bug: one line; the traceback with VIDARCH_DEBUG=1
        from search.results.guard import report

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        report(f"internal: {type(exc).__name__}: {first} (set VIDARCH_DEBUG=1 for the "
               f"traceback)", exc)
        with contextlib.suppress(Exception, KeyboardInterrupt):
            _shutdown_ray()
        return 1


def _main(argv: list[str] | None, sigint: Any = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.format(**{g if g != "study" else "studies": " | ".join(options(g))
                              for g in GROUPS}))
        return 0
    print_cfg, dry_run = "--cfg" in argv, "--dry-run" in argv
    overrides = [a for a in argv if a not in ("--cfg", "--dry-run")]
    bad = [a for a in overrides if a.startswith("-")]
    if bad:
        print(f"error: {bad[0]}: unknown option (see --help)", file=sys.stderr)
        return 2
    added = [a for a in overrides if a.startswith(("+", "~"))]
    if added:
        key = added[0].lstrip("+~").split("=")[0]
        print(f"error: {key}: unknown key (the config is typed: keys cannot be added or "
              f"removed)", file=sys.stderr)
        return 2

    from search.design.studies import StudyError, build_design
    from search.results.urls import mask

    try:
        cfg, int_lists = _compose(overrides)
        if print_cfg:  # the effective config (its variants listed): calibrated defaults filled in
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(snapshot(to_run_config(cfg, int_lists))))
            return 0
        # (config, design): the study, or one per variant (search.design.variants), all checked first
        studies = [(run_cfg, build_design(run_cfg)) for run_cfg in studies_of(cfg, int_lists)]
    except (ConfigError, StudyError) as exc:
        print(f"error: {mask(str(exc))}", file=sys.stderr)
        return 2
    if dry_run:  # the arms, torch-free: nothing is started or stored
        from search.design.design_table import format_design

        print("\n\n".join(format_design(design, run_cfg.study.name)
                           for run_cfg, design in studies))
        return 0
    status = 0
    for run_cfg, design in studies:
        interrupts.check()
        code = run_one(run_cfg, design, sigint)
        if code in (2, 130):
            return code  # bad input or interrupted: the next studies do not start
        status = max(status, code)
    return status


def run_one(run_cfg: Any, design: Any, sigint: Any = None) -> int:
    """Run (or resume) one study whose design is built; return its exit status."""
    from search.results.store import StoreError

    current = snapshot(run_cfg)
    name = run_cfg.study.name
    if run_cfg.hardware.address:  # a cluster that cannot be reached is bad input: check first
        try:
            from search.driver import start_ray

            start_ray(run_cfg)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"error: hardware.address: cannot join Ray at {run_cfg.hardware.address!r}: "
                  f"{reason}", file=sys.stderr)
            return 2
    if run_cfg.data.is_video:  # the decoder that will run: a fallback is noticed here, once
        from search.data.decoders import check_decoder

        check_decoder(run_cfg.data.decoder, run_cfg.data.decode_device)
    from search.driver import check_resources

    problem = check_resources(run_cfg)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        _shutdown_ray()
        return 2

    from search.results.guard import StudyGuard, report

    try:  # the database, and the study's lease: one driver per study
        guard = StudyGuard.open(run_cfg.storage, name)
    except StoreError as exc:
        report(str(exc), exc)
        _shutdown_ray()
        return 2
    try:
        interrupts.check()
        return _run_guarded(run_cfg, design, current, guard, sigint=sigint)
    finally:
        guard.close()


def _store_summaries(engine: Any, study_id: int) -> None:
    """Store the study's per-network summaries for the readers (``search.results.summaries``);
    derived data, so a failure is a notice, not a failed run."""
    from search.results.dberrors import short
    from search.results.summaries import refresh

    try:
        refresh(engine, study_id)
    except Exception as exc:  # the readers group live instead
        if not _is_db_error(exc):
            raise
        print(f"summaries: not stored ({short(exc)}); the dashboard groups live",
              file=sys.stderr)


def _run_guarded(run_cfg: Any, design: Any, current: dict[str, Any], guard: StudyGuard, *,
                 sigint: Any = None) -> int:
    """Open the study while holding its lease, run it, reset what is left RUNNING, summarise."""
    from search.driver import Outcome, run_study
    from search.results.dberrors import LeaseLost, StoreError, find_store_error, short
    from search.results.guard import report
    from search.results.store import get_or_create_study, get_study, repair_running
    from search.summary import print_summary

    name = run_cfg.study.name
    if guard.lease.took_over:
        print(f"lease: study {name!r} was held by a driver that stopped ({guard.lease.took_over});"
              f" taken over", file=sys.stderr)
    version, sha = _version(), _git_sha()

    def open_study(s: Any) -> tuple[int, int]:
        existing = get_study(s, name)
        if existing is not None and check_resumable(existing.config_json, current, name):
            existing.config_json = json.dumps(current, sort_keys=True)
        study = get_or_create_study(s, name, kind=run_cfg.study.sampler, config=current,
                                    package_version=version, git_sha=sha)
        return study.id, repair_running(s, study.id)

    try:
        study_id, repaired = guard.transaction(open_study)
    except (StoreError, ConfigError) as exc:
        report(str(exc), exc)
        _shutdown_ray()
        return 2
    if repaired:
        print(f"resume: {repaired} trial(s) left RUNNING by an earlier run marked interrupted; "
              f"they run again", file=sys.stderr)

    outcome = Outcome()
    crashed: Exception | None = None
    note = ""
    try:
        interrupts.check()
        outcome = run_study(run_cfg, design, guard.engine, study_id, guard=guard)
    except KeyboardInterrupt:
        outcome.interrupted = True
    except Exception as exc:  # a storage failure, a driver bug or a Ray failure
        crashed = exc
    finally:
        # Whatever stopped us, no row stays RUNNING: the next run re-runs those cells (a second
        # Ctrl-C waits for this clean-up).
        with interrupts.held(restore=sigint):
            try:
                note = guard.reset_running(study_id)
            finally:
                _shutdown_ray()
    stored = guard.fatal or find_store_error(crashed)
    if isinstance(stored, LeaseLost):
        report(str(stored), crashed or stored)
        return 1
    if stored is not None:  # the database failed for longer than the retries: one line
        report(f"{stored}{note}; rerun the same command to resume", crashed or stored)
        return 1
    if crashed is not None:
        first = str(crashed).strip().splitlines()[0] if str(crashed).strip() else ""
        report(f"driver: {type(crashed).__name__}: {first} (set VIDARCH_DEBUG=1 for the "
               f"traceback; rerun the same command to resume)", crashed)
    elif not outcome.interrupted:
        _store_summaries(guard.engine, study_id)
    if run_cfg.summary:
        try:
            data = print_summary(guard.engine, study_id, name, outcome, run_cfg.storage)
        except Exception as exc:  # the database went away after the run
            if find_store_error(exc) is None and not _is_db_error(exc):
                raise
            report(f"storage: cannot read the summary: {short(exc)}", exc)
            return 1
        failed = data["counts"]["FAILED"]
        from search.design.tracking import viewer_line

        line = viewer_line(run_cfg)
        if line:
            print(line)
    else:
        failed = outcome.failed
    if outcome.interrupted:
        return _say_interrupted()
    return 1 if failed or outcome.failed or crashed else 0


def _is_db_error(exc: BaseException) -> bool:
    from search.results.dberrors import classify

    return classify(exc) is not None


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # exiting anyway; Ray's own atexit cleans up the rest
            pass


def _entry() -> int:
    """``python -m search.run``: ``main``, and exit 130 for a Ctrl-C that lands outside it (a
    signal pending while ``main`` hands SIGINT back; CI saw the line printed, then the process
    killed by SIGINT); further Ctrl-Cs are ignored while the interpreter exits."""
    import signal

    try:
        code = main()
        if code == 130:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = _say_interrupted()
    return code


if __name__ == "__main__":
    sys.exit(_entry())

"""Entry point: ``python -m search.run study=bottom_vs_top storage=sqlite:///studies.db key=value``.

Configuration happens here and only here: Hydra composes ``search/conf`` (typed by
``search.config``) with the command-line overrides, the result becomes a ``RunConfig`` object,
the study's design is built and checked, and only then is the database opened (created if
missing) and Ray started. Bad input is one line on stderr naming the key, exit status 2, and
the database untouched.

The config is composed with Hydra's compose API: no ``outputs/`` or ``.hydra/`` directory, no
change of directory, no logging set-up (the primary config says the same for ``@hydra.main``).

One driver runs a study at a time (a lease in the database, ``search.guard``); transient
database errors are retried for a bounded time (``search.retry``). Every error is one line on
stderr; ``VIDARCH_DEBUG=1`` adds the traceback.

Exit status: 0 every trial of the study completed (or was pruned); 1 some trial failed, or the
database failed mid-run (past the retries); 2 bad input, storage that refuses writes, or a study
another driver is running; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.guard import StudyGuard

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS: tuple[str, ...] = ("study", "data", "train", "hardware")
# Config sections that define a study's results; a rerun must agree on them to resume.
DESIGN_KEYS: tuple[str, ...] = ("study", "data", "train")
# Changes that extend a study instead of redefining it (or only change how fast it runs): a
# rerun with them resumes.
EXTENDABLE_KEYS: frozenset[str] = frozenset({"study.seeds", "study.num_samples",
                                             "study.description", "data.num_workers",
                                             "data.decoder", "data.decode_device", "data.cache",
                                             "data.cache_dir"})

USAGE = """usage: python -m search.run [study=NAME] [storage=URL] [key=value ...] [--cfg] [--dry-run]
                           [--help]

  study=    {studies}   (default bottom_vs_top)
  data=     {data}
  train=    {train}
  hardware= {hardware}
  storage=  SQLAlchemy URL of the results database (default sqlite:///studies.db)

Any field can be overridden with a dotted key, e.g. train.epochs=4 study.seeds=[0,1]
hardware.cpus_per_trial=2. --cfg prints the composed config and exits; --dry-run prints the
study's arms (widths, MACs, params, matched-compute scale) and exits, before Ray or any training.
A study that lists study.variants runs one study per variant, named <study.name>.<label>
(e.g. placement_crossover.scale4). Rerunning the same command resumes the study."""


# Study names: a database key and the name of Tune's experiment directory.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STUDY_NAME_MAX = 100
INTERRUPTED_LINE = "interrupted: stopped cleanly; rerun the same command to resume"


class ConfigError(ValueError):
    """Bad command-line input; the message is one line naming the key."""


def options(group: str) -> list[str]:
    """The presets of a config group (YAML files shipped in search/conf/<group>)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _group_override(overrides: list[str]) -> None:
    """Catch unknown group options early, with the list of valid ones."""
    for item in overrides:
        match = re.fullmatch(r"(\w+)=(.*)", item)
        if match and match.group(1) in GROUPS:
            group, value = match.groups()
            if value not in options(group):
                raise ConfigError(f"{group}: unknown {group} {value!r} "
                                  f"(choose from {', '.join(options(group))})")


def _one_line(exc: BaseException) -> str:
    """Hydra / OmegaConf errors as one line: 'key: reason'."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OmegaConfBaseException):
        exc, text = cause, str(cause)
    key = getattr(exc, "full_key", None)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    match = re.search(r"Could not override '([^']+)'", text)
    if match and not key:
        key = match.group(1)
    match_missing = re.search(r"Key '([^']+)' (?:is )?not in (?:struct|'\w+')", text)
    if match_missing:
        key = key or match_missing.group(1)
        return f"{key}: unknown key"
    match_convert = re.search(r"Value '(.*?)'(?: of type '\w+')? could not be converted to "
                              r"(\w+)", text)
    if match_convert:
        return f"{key or '?'}: wrong type: {match_convert.group(1)!r} is not a {match_convert.group(2)}"
    if "Could not find" in first and "/" in first:
        group = re.search(r"'(\w+)/", first)
        name = group.group(1) if group else "config"
        return f"{name}: {first}"
    first = re.sub(r"\s*full_key:.*$", "", first)
    return f"{key}: {first}" if key else first


def compose(overrides: list[str]) -> Any:
    """Compose the config with Hydra (no outputs/, no chdir) and return the DictConfig."""
    from search.overrides import set_int_lists

    cfg, int_lists = _compose(overrides)
    set_int_lists(cfg, int_lists)
    return cfg


def _compose(overrides: list[str]) -> tuple[Any, dict[str, list[int]]]:
    """``compose``, with long integer lists (``study.seeds=range(20000)``) left out of Hydra,
    whose override parser is quadratic in a list's length: they are returned apart."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search.config import register_configs
    from search.overrides import split_int_lists

    _group_override(overrides)
    register_configs()
    GlobalHydra.instance().clear()
    try:
        overrides, int_lists = split_int_lists(overrides)
        with initialize_config_module(config_module="search.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(_one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg, int_lists


def to_run_config(cfg: Any, int_lists: dict[str, list[int]] | None = None) -> Any:
    """The typed ``RunConfig`` object of a composed config (plus lists ``_compose`` set apart)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search.overrides import OverrideError, assign_int_lists

    try:
        run_cfg: Any = OmegaConf.to_object(cfg)
        assign_int_lists(run_cfg, int_lists or {})
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc)) from None
    except OverrideError as exc:
        raise ConfigError(str(exc)) from None
    if not run_cfg.study.name or run_cfg.study.name == "???":
        raise ConfigError("study.name: missing")
    check_study_name(run_cfg.study.name)
    from search.urls import UrlError, check_storable, to_url

    run_cfg.storage = to_url(run_cfg.storage)  # a bare file name means SQLite
    try:
        check_storable(run_cfg.storage)
    except UrlError as exc:
        raise ConfigError(str(exc)) from None
    from search.config import fill_defaults

    return fill_defaults(run_cfg)


def check_study_name(name: str) -> None:
    """``ConfigError`` unless ``name`` is safe as a database key and a directory name.

    The name becomes Tune's experiment directory under ``hardware.checkpoint_dir``: no path
    separators, no ``..``, at most ``STUDY_NAME_MAX`` characters.
    """
    if len(name) > STUDY_NAME_MAX:
        raise ConfigError(f"study.name: {len(name)} characters, at most {STUDY_NAME_MAX} "
                          f"({name[:24]!r}...)")
    if not STUDY_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"study.name: {name!r} is not a safe name: use letters, digits, "
                          f"'.', '_' and '-', starting with a letter or digit (no '/' or '..')")


def snapshot(run_cfg: Any) -> dict[str, Any]:
    """The effective config stored with the study (plain JSON, defaults filled in; the storage
    URL without its password)."""
    import dataclasses

    from search.urls import mask

    data = dataclasses.asdict(run_cfg)
    data["storage"] = mask(str(data.get("storage", "")))
    return data


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if a == b else [path]


def check_resumable(stored_json: str, current: dict[str, Any], name: str) -> bool:
    """Refuse to continue a study whose design (study, data, train) was different.

    More seeds, a larger search budget or a new description extend a study and are allowed.

    Returns:
        True when the stored config should be replaced by the current one (it was extended).
    """
    stored = _with_new_defaults(json.loads(stored_json))
    diffs = _differences({k: stored.get(k) for k in DESIGN_KEYS},
                         {k: current.get(k) for k in DESIGN_KEYS})
    blocking = [d for d in diffs if d not in EXTENDABLE_KEYS]
    if blocking:
        diff = blocking[0]
        raise ConfigError(f"{diff}: study {name!r} exists with {diff}="
                          f"{_get(stored, diff)!r}, not {_get(current, diff)!r}; rerun with the "
                          f"same settings to resume, or set study.name=NEW for a new study")
    return bool(diffs)


def _with_new_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the keys added to the schema since it was stored at their defaults
    (e.g. ``study.match: none``): a study run before a key existed ran with its default."""
    import dataclasses

    from search.config import DataConfig, StudyConfig, TrainSettings

    def fill(data: Any, defaults: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(defaults, dict):
            return data
        return {**defaults, **{k: fill(v, defaults.get(k)) for k, v in data.items()}}

    sections = {"study": StudyConfig, "data": DataConfig, "train": TrainSettings}
    filled = {**stored, **{key: fill(stored[key], dataclasses.asdict(cls()))
                           for key, cls in sections.items() if isinstance(stored.get(key), dict)}}
    for (section, key), value in LEGACY_VALUES.items():  # what a study stored before a key ran with
        if isinstance(stored.get(section), dict) and key not in stored[section]:
            filled[section][key] = value
    return filled


# Keys whose default changed when they were added: a study stored before them ran without the
# feature, so it resumes that way (the plateau stopper came with schema 0003).
LEGACY_VALUES: dict[tuple[str, str], Any] = {("train", "plateau_stop"): False}


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


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
    try:
        return _main(argv, sigint=signal.getsignal(signal.SIGINT))
    except KeyboardInterrupt:
        with contextlib.suppress(KeyboardInterrupt):
            _shutdown_ray()
        print(INTERRUPTED_LINE, file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line; the traceback with VIDARCH_DEBUG=1
        from search.guard import report

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

    from search.studies import StudyError, build_design
    from search.urls import mask

    try:
        cfg, int_lists = _compose(overrides)
        if print_cfg:  # the effective config (its variants listed): calibrated defaults filled in
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(snapshot(to_run_config(cfg, int_lists))))
            return 0
        # (config, design): the study, or one per variant (search.variants), all checked first
        studies = [(run_cfg, build_design(run_cfg)) for run_cfg in studies_of(cfg, int_lists)]
    except (ConfigError, StudyError) as exc:
        print(f"error: {mask(str(exc))}", file=sys.stderr)
        return 2
    if dry_run:  # the arms, torch-free: nothing is started or stored
        from search.design_table import format_design

        print("\n\n".join(format_design(design, run_cfg.study.name)
                           for run_cfg, design in studies))
        return 0
    status = 0
    for run_cfg, design in studies:
        code = run_one(run_cfg, design, sigint)
        if code in (2, 130):
            return code  # bad input or interrupted: the next studies do not start
        status = max(status, code)
    return status



def studies_of(cfg: Any, int_lists: Any = None) -> list[Any]:
    """The typed configs a composed config runs: itself, or one per ``study.variants`` entry."""
    from search.variants import VariantError, expand

    try:
        points = expand(cfg)
    except VariantError as exc:
        raise ConfigError(str(exc)) from None
    return ([to_run_config(point, int_lists) for _, point in points]
            or [to_run_config(cfg, int_lists)])


def run_one(run_cfg: Any, design: Any, sigint: Any = None) -> int:
    """Run (or resume) one study whose design is built; return its exit status."""
    from search.store import StoreError

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
    from search.driver import check_resources

    problem = check_resources(run_cfg)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        _shutdown_ray()
        return 2

    from search.guard import StudyGuard, report

    try:  # the database, and the study's lease: one driver per study
        guard = StudyGuard.open(run_cfg.storage, name)
    except StoreError as exc:
        report(str(exc), exc)
        _shutdown_ray()
        return 2
    try:
        return _run_guarded(run_cfg, design, current, guard, sigint=sigint)
    finally:
        guard.close()


def _run_guarded(run_cfg: Any, design: Any, current: dict[str, Any], guard: StudyGuard, *,
                 sigint: Any = None) -> int:
    """Open the study while holding its lease, run it, reset what is left RUNNING, summarise."""
    from search.dberrors import LeaseLost, StoreError, find_store_error, short
    from search.driver import Outcome, run_study
    from search.guard import report
    from search.store import get_or_create_study, get_study, repair_running
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
        outcome = run_study(run_cfg, design, guard.engine, study_id, guard=guard)
    except KeyboardInterrupt:
        outcome.interrupted = True
    except Exception as exc:  # a storage failure, a driver bug or a Ray failure
        crashed = exc
    finally:
        # Whatever stopped us, no row stays RUNNING: the next run re-runs those cells (a second
        # Ctrl-C waits for this clean-up).
        with _sigint_held(restore=sigint):
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
    if run_cfg.summary:
        try:
            data = print_summary(guard.engine, study_id, name, outcome, run_cfg.storage)
        except Exception as exc:  # the database went away after the run
            if find_store_error(exc) is None and not _is_db_error(exc):
                raise
            report(f"storage: cannot read the summary: {short(exc)}", exc)
            return 1
        failed = data["counts"]["FAILED"]
    else:
        failed = outcome.failed
    if outcome.interrupted:
        print(INTERRUPTED_LINE, file=sys.stderr)
        return 130
    return 1 if failed or outcome.failed or crashed else 0


@contextlib.contextmanager
def _sigint_held(restore: Any = None) -> Iterator[None]:
    """Run the block to its end under Ctrl-C; a Ctrl-C that came meanwhile is raised after it.

    Afterwards SIGINT gets the handler ``restore`` (the one at start-up; default: raise
    ``KeyboardInterrupt``), not the one Tune leaves behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, restore if restore is not None
                      else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt
def _is_db_error(exc: BaseException) -> bool:
    from search.dberrors import classify

    return classify(exc) is not None


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # exiting anyway; Ray's own atexit cleans up the rest
            pass


if __name__ == "__main__":
    sys.exit(main())

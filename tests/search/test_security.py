"""Nothing lost, nobody in (fast part): storage URLs and their secrets, study names, and which
checkpoints a trial may read. The end-to-end runs are in ``test_security_runs.py``."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest
import torch
from torch import nn

from search.checkpoints import inside_study, load_train_state
from search.design.composing import to_run_config
from search.design.resuming import snapshot
from search.results.store import open_engine
from search.results.urls import check_storable, for_command, mask, to_url
from search.run import main

SECRET = "S3cret-pw"


class Payload:
    """Unpickling this runs code: it writes ``marker`` (what a crafted state.pt would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


# --- storage URLs -----------------------------------------------------------------------------


def test_storage_strings_become_urls_by_one_rule() -> None:
    assert to_url("studies.db") == "sqlite:///studies.db"
    assert to_url("~/runs/a.sqlite") == f"sqlite:///{Path.home() / 'runs/a.sqlite'}"
    assert to_url("not-a-url") == "not-a-url"  # a typo never becomes a new database file
    # Plain postgresql:// names the installed driver (psycopg2; SQLAlchemy 2.1 assumes psycopg).
    driver = "postgresql" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2"
    assert to_url("postgresql://u:p@h:5/db") == f"{driver}://u:p@h:5/db"
    assert to_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match=r"^storage: .*in-memory database"):
            check_storable(memory)
    check_storable("sqlite:///studies.db")


def test_passwords_are_masked_in_text_and_left_out_of_commands() -> None:
    text = f"cannot open postgresql+psycopg2://bob:{SECRET}@db.example:5432/runs (refused)"
    assert mask(text) == "cannot open postgresql+psycopg2://bob:***@db.example:5432/runs (refused)"
    assert mask("sqlite:///studies.db") == "sqlite:///studies.db"
    shown, hidden = for_command(f"postgresql+psycopg2://bob:{SECRET}@h/db?sslmode=require")
    assert hidden and SECRET not in shown and shown == "postgresql+psycopg2://bob@h/db?sslmode=require"
    assert for_command("sqlite:///studies.db", base=Path("/work")) == ("/work/studies.db", False)


def test_the_stored_config_and_every_message_hide_the_password(tmp_path, monkeypatch,
                                                               capsys) -> None:
    from search.design.composing import compose

    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/vidarch"  # nothing listens on port 1
    stored = snapshot(to_run_config(compose(["study=smoke", f"storage={url}"])))
    assert SECRET not in str(stored) and stored["storage"].endswith(":***@127.0.0.1:1/vidarch")

    monkeypatch.chdir(tmp_path)
    assert main(["study=smoke", f"storage={url}", "--cfg"]) == 0
    out = capsys.readouterr().out
    assert "***@127.0.0.1:1" in out and SECRET not in out
    assert main(["study=smoke", f"storage={url}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: storage: cannot open") and err.count("\n") == 1, err
    assert SECRET not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("storage", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(storage, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["study=smoke", f"storage={storage}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: storage: ") and "in-memory" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# --- study names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("../../../tmp/x", "is not a safe name"),
    ("a/b", "is not a safe name"),
    ("..", "is not a safe name"),
    (".hidden", "is not a safe name"),
    ("x" * 300, "300 characters, at most 100"),
])
def test_unsafe_study_names_are_refused_before_anything_is_written(
        name, expected, tmp_path, monkeypatch, capsys) -> None:
    db = tmp_path / "studies.db"
    open_engine(f"sqlite:///{db}", create=True).dispose()  # an existing results database
    before = db.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    checkpoints = tmp_path / "ckpt" / "a" / "b" / "c"
    code = main(["study=smoke", f"study.name={name}", f"storage=sqlite:///{db}",
                 f"hardware.checkpoint_dir={checkpoints}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: study.name: ") and expected in err, err
    assert err.count("\n") == 1 and len(err) < 300
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["studies.db", "work"]
    assert list(work.iterdir()) == []
    assert sqlite3.connect(db).execute("SELECT count(*) FROM studies").fetchone() == (0,)


def test_safe_names_pass() -> None:
    from search.design.composing import check_study_name

    for name in ("smoke", "bottom_vs_top-2.v1", "A" * 100):
        check_study_name(name)


# --- checkpoints ------------------------------------------------------------------------------


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))  # never run


def _state(model: nn.Module, epoch: int = 1) -> dict:
    from search.train import _get_rng_state

    optimizer = torch.optim.AdamW(model.parameters())
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": {"last_epoch": 3}, "epoch": epoch, "history": [{"val/acc1": 0.5}],
            "rng": _get_rng_state(), "seed": 0}


def _save(obj: object, root: Path, rel: str) -> str:
    directory = root / rel
    directory.mkdir(parents=True)
    torch.save(obj, directory / "state.pt")
    return str(directory)


def test_only_the_studys_own_checkpoint_directories_are_read(tmp_path) -> None:
    root = str(tmp_path / "ckpt")
    assert inside_study(f"{root}/smoke-20260101-120000/t-s0-1/checkpoint_000001", root, "smoke")
    for outside in (f"{root}/smoke-x-20260101-120000/t/checkpoint_000001",  # another study
                    f"{root}/smoke-20260101-120000/../../evil/checkpoint_000001",
                    f"{root}/smoke-20260101-120000",  # not inside a trial directory
                    str(tmp_path / "evil" / "checkpoint_000001"), "/etc/passwd"):
        assert not inside_study(outside, root, "smoke"), outside
    link = tmp_path / "ckpt" / "smoke-20260101-120000" / "t"
    link.parent.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    link.symlink_to(tmp_path / "elsewhere")
    assert not inside_study(f"{link}/checkpoint_000001", root, "smoke")
    assert inside_study("s3://b/r/smoke-20260101-120000/t/c", "s3://b/r", "smoke")
    assert not inside_study("s3://b/r/../smoke-20260101-120000/t/c", "s3://b/r", "smoke")


def test_checkpoints_load_weights_only_and_must_fit_the_network(tmp_path) -> None:
    root, study = tmp_path / "ckpt", "smoke"
    inside = f"{study}-20260101-120000"
    model = _model()
    marker = tmp_path / "pwned"
    evil = _save(Payload(marker), root, f"{inside}/evil/checkpoint_000000")
    # The payload is live: an unrestricted load runs it (so the assertions below can fail).
    torch.load(Path(evil) / "state.pt", weights_only=False)
    assert marker.read_text() == "pwned"
    marker.unlink()

    def load(path: str | None) -> tuple:
        return load_train_state(path, model, root=str(root), study=study, epochs=3)

    state, note = load(evil)
    assert state is None and "not a plain weights file" in note and not marker.exists()
    outside = _save(Payload(marker), tmp_path, "outside/checkpoint_000000")
    state, note = load(outside)
    assert state is None and note.startswith(f"checkpoint {outside} refused: outside")
    assert not marker.exists()

    state, note = load(_save({"weights": torch.zeros(3)}, root, f"{inside}/keys/c_0"))
    assert state is None and "no 'model', 'optimizer'" in note
    other = nn.Sequential(nn.Conv3d(3, 4, (1, 3, 3)), nn.Flatten(), nn.Linear(4, 2))
    state, note = load(_save(_state(other), root, f"{inside}/shapes/c_0"))
    assert state is None and "0.weight has shape (4, 3, 1, 3, 3)" in note
    state, note = load(_save(_state(model, epoch=9), root, f"{inside}/epoch/c_0"))
    assert state is None and "epoch 9 is not within the 3 planned" in note

    good = _state(model, epoch=2)
    state, note = load(_save(good, root, f"{inside}/good/checkpoint_000001"))
    assert note is None and state["epoch"] == 2 and state["rng"]["numpy"][0] == "MT19937"
    assert torch.equal(state["model"]["0.weight"], good["model"]["0.weight"])
    assert load(None) == (None, None)
    assert load(str(root / inside / "gone" / "checkpoint_000009")) == (None, None)


def test_a_failed_trials_reason_comes_from_the_text_file_not_the_pickle(tmp_path) -> None:
    import pickle
    from types import SimpleNamespace

    from search.tuning import error_reason

    marker = tmp_path / "pwned"
    pickled = tmp_path / "error.pkl"
    pickled.write_bytes(pickle.dumps(Payload(marker)))
    text = tmp_path / "error.txt"
    text.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
                    "ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n"
                    '  File "search/trainable.py", line 66, in run_trial\n'
                    '    raise TrialFailure(f"nan: non-finite loss")\n'
                    "search.trainable.TrialFailure: nan: non-finite loss nan at epoch 1\n")
    trial = SimpleNamespace(error_file=str(text), pickled_error_file=str(pickled))
    assert error_reason(trial) == "nan: non-finite loss nan at epoch 1"
    assert not marker.exists()
    text.write_text("Failure # 1\n  File \"x.py\", line 1\nValueError: bad width 3\n")
    assert error_reason(trial) == "ValueError: bad width 3"
    assert error_reason(SimpleNamespace(error_file=None)) == "failed (no error recorded)"


def test_an_unexpected_failure_is_one_masked_line_unless_debugging(tmp_path, monkeypatch,
                                                                   capsys) -> None:
    import search.design.studies

    def broken(run_cfg: object) -> None:
        raise RuntimeError(f"cannot reach postgresql://bob:{SECRET}@h/db\nsecond line")

    monkeypatch.setattr(search.design.studies, "build_design", broken)  # a bug, injected
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDARCH_DEBUG", raising=False)
    assert main(["study=smoke"]) == 1
    err = capsys.readouterr().err
    assert err == ("error: internal: RuntimeError: cannot reach postgresql://bob:***@h/db (set "
                   "VIDARCH_DEBUG=1 for the traceback)\n")
    monkeypatch.setenv("VIDARCH_DEBUG", "1")
    assert main(["study=smoke"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and SECRET not in err
    assert list(tmp_path.iterdir()) == []

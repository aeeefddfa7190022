"""Storage strings: the one owner of how a ``storage=`` value becomes a SQLAlchemy URL, and of
how a URL is shown (never with its password).

``to_url`` is used by ``search.run`` (the writer), ``analysis.loading`` (the readers) and the
driver's "Next:" line alike; ``mask`` hides the password of every URL in a text (messages, the
config snapshot stored with a study). Torch- and Ray-free.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
SQLITE_SUFFIXES: tuple[str, ...] = (".db", ".sqlite", ".sqlite3")  # a bare path means SQLite
# scheme://user:PASSWORD@ — a password cannot hold a raw "@" (SQLAlchemy's own URL grammar).
_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s/:@]*:)([^\s@]*)@")
# SQLAlchemy's default PostgreSQL driver, then the one vidarch installs (psycopg2-binary).
_PG_DRIVERS: tuple[tuple[str, str], ...] = (("psycopg", "postgresql"),
                                            ("psycopg2", "postgresql+psycopg2"))


class UrlError(ValueError):
    """A storage string that cannot hold results; the message is one line naming ``storage``."""


def to_url(storage: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a storage string.

    A URL is kept as given, except that a plain ``postgresql://`` names the PostgreSQL driver
    that is installed (SQLAlchemy 2.1 assumes psycopg 3; vidarch depends on psycopg2). A file
    path with a database suffix, or an existing file, means SQLite: ``studies.db`` →
    ``sqlite:///studies.db`` (``~`` expanded). Anything else is returned unchanged, for
    ``open_engine`` to refuse as not a URL (a typo never becomes a new database file).
    """
    text = os.fspath(storage)
    if "://" not in text:
        path = Path(text).expanduser()
        if path.suffix.lower() in SQLITE_SUFFIXES or path.is_file():
            return f"sqlite:///{path}"
        return text
    try:
        url = make_url(text)
    except ArgumentError:
        return text  # open_engine says it is not a URL, naming storage
    if url.drivername == "postgresql":
        driver = next((name for module, name in _PG_DRIVERS
                       if importlib.util.find_spec(module) is not None), url.drivername)
        if driver != url.drivername:
            return url.set(drivername=driver).render_as_string(hide_password=False)
    return text


def check_storable(url: str) -> None:
    """``UrlError`` when ``url`` is not a URL, or results written to it would not outlive the run
    (in-memory SQLite). Checked when the config is composed, before anything is started."""
    parsed = _parse(url)
    if parsed is None:
        raise UrlError(f"storage: not a SQLAlchemy URL: {mask(url)!r}")
    if parsed.get_backend_name() == "sqlite" \
            and parsed.database in (None, "", ":memory:"):
        raise UrlError(f"storage: {mask(url)} is an in-memory database: the results would vanish "
                       f"when the run ends; give a file, e.g. storage=sqlite:///studies.db")


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (as written: maybe relative), else None."""
    parsed = _parse(url)
    if parsed is None or parsed.get_backend_name() != "sqlite" \
            or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def for_command(url: str, *, base: Path | None = None) -> tuple[str, bool]:
    """What to pass as ``--db`` in a printed command, and whether a password was left out.

    A SQLite file is shown as its path (made absolute against ``base`` when given); any other
    URL without its password (libpq then reads ``PGPASSWORD`` or ``~/.pgpass``).
    """
    path = sqlite_path(url)
    if path is not None:
        return str(base / path if base is not None and not path.is_absolute() else path), False
    parsed = _parse(url)
    if parsed is None or parsed.password is None:
        return mask(url), False
    shown = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                       port=parsed.port, database=parsed.database, query=parsed.query)
    return shown.render_as_string(hide_password=False), True


def _parse(url: str) -> URL | None:
    try:
        return make_url(url)
    except ArgumentError:
        return None

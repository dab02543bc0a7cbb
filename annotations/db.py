"""Engine, sessions and migrations.

    engine = create_engine_from_url()          # MMSA_DB_URL, else SQLite under MMSA_DATA_DIR or ./data
    init_db(engine)                            # Alembic upgrade to head (an old database upgrades in place)
    sessions = create_sessionmaker(engine)
    with sessions.begin() as s:                # one short session per user action
        save_correction(s, post_id, "ana", "positive")

SQLite runs in WAL mode with foreign keys on and a busy timeout, and every transaction starts with
BEGIN IMMEDIATE: a deferred transaction that reads and then writes fails at once with
SQLITE_BUSY when another connection wrote in between (the busy timeout does not apply to that
case), while an immediate one simply waits its turn. Any other SQLAlchemy URL (PostgreSQL) works too.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

ENV_DB_URL = "MMSA_DB_URL"
ENV_DATA_DIR = "MMSA_DATA_DIR"
DB_FILENAME = "annotations.sqlite"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def default_data_dir() -> Path:
    """`$MMSA_DATA_DIR`, else `./data`: images, the SQLite file and exports live here."""
    return Path(os.environ.get(ENV_DATA_DIR) or "data")


def default_db_url(data_dir: Optional[str | Path] = None) -> str:
    """`$MMSA_DB_URL`, else SQLite at `<data_dir>/annotations.sqlite`."""
    url = os.environ.get(ENV_DB_URL)
    if url:
        return url
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    return f"sqlite:///{(path / DB_FILENAME).resolve()}"


def create_engine_from_url(
    url: Optional[str] = None, *, busy_timeout_s: float = 30.0, echo: bool = False
) -> Engine:
    """Create an engine for `url` (default: default_db_url()); SQLite gets WAL, FKs, busy timeout."""
    url_obj = make_url(url or default_db_url())
    if url_obj.get_backend_name() != "sqlite":
        return create_engine(url_obj, pool_pre_ping=True, echo=echo)
    database = url_obj.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": busy_timeout_s, "check_same_thread": False}
    engine = create_engine(url_obj, connect_args=connect_args, echo=echo)
    _configure_sqlite(engine, busy_timeout_s, wal=not in_memory)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (see module docstring); pysqlite's own BEGIN is deferred.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose returned values stay readable after commit (expire_on_commit=False)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: Optional[str] = None) -> Any:
    """An Alembic Config pointing at the packaged migrations; no alembic.ini needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> Optional[str]:
    """The revision the database is stamped at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for Alembic; on SQLite with FK enforcement off meanwhile."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # SQLite can only rebuild a referenced table (batch mode) with FK enforcement off, and
            # the pragma is a no-op inside a transaction, so set it on the driver before BEGIN.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise RuntimeError(f"Migration left foreign-key violations: {bad[:5]}")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def init_db(engine: Engine, revision: str = "head") -> Optional[str]:
    """Upgrade the database to `revision` with Alembic (creating it when empty); returns the revision.

    Call it once at start-up, not from several processes at the same time.
    """
    from alembic import command

    cfg = alembic_config()
    with _migration_connection(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    rev = current_revision(engine)
    log.info("database %s at revision %s", engine.url.render_as_string(hide_password=True), rev)
    return rev


def downgrade_db(engine: Engine, revision: str) -> Optional[str]:
    """Downgrade the database to an older `revision` (history that the old schema cannot hold,
    such as skip and undo rows before 0002, is dropped); returns the revision."""
    from alembic import command

    cfg = alembic_config()
    with _migration_connection(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    return current_revision(engine)


def check_at_head(engine: Engine) -> None:
    """Raise RuntimeError, with the fix, unless the database is at the newest revision."""
    rev, head = current_revision(engine), head_revision()
    if rev != head:
        raise RuntimeError(
            f"Database is at revision {rev!r}, this code needs {head!r}; "
            "upgrade it with `python -m annotations.db --db URL`"
        )


def main(argv: Optional[list[str]] = None) -> None:
    """`python -m annotations.db [--db URL] [--revision REV]`: migrate a database."""
    parser = argparse.ArgumentParser(description="Create or upgrade the annotation database.")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or ./data)")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = create_engine_from_url(args.db)
    print(init_db(engine, args.revision))


if __name__ == "__main__":
    main()

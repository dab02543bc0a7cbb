"""Alembic migrations: empty -> head, a 0001 database with data upgraded in place, and 0003 merging
duplicate posts without losing a label."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import annotations as A
from annotations.db import downgrade_db
from annotations.models import Base



def test_empty_database_to_head_matches_models(db_url):
    engine = A.create_engine_from_url(db_url)
    assert A.current_revision(engine) is None
    assert A.init_db(engine) == A.head_revision() == "0005"
    assert A.init_db(engine) == A.head_revision()  # idempotent
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []  # the ORM models describe exactly the migrated schema
    engine.dispose()


def test_upgrade_from_0001_keeps_data(db_url, data_dir, old_rows):
    engine = A.create_engine_from_url(db_url)
    assert A.init_db(engine, "0001") == "0001"
    with engine.begin() as conn:
        for sql in old_rows:
            conn.execute(text(sql))
    assert A.init_db(engine) == A.head_revision()
    sessions = A.create_sessionmaker(engine)
    with sessions() as s:
        rows = A.history(s, post_id=1)
        assert [(r["kind"], r["label"], r["note"]) for r in rows] == [
            ("label", "neutral", None), ("label", "negative", "old note")]
        assert A.current_labels(s, 1) == {"ana": "neutral"}
        post = A.get_post(s, 1, data_dir)
        assert post["prediction"]["prediction_id"] == 3 and post["conflict"] == 1.0  # back-filled
        assert A.next_in_queue(s, "bob", "least_confident")["post_id"] == 2  # 0.4 < 0.8
        assert A.next_in_queue(s, "bob", "conflict")["post_id"] == 1
        assert A.next_in_queue(s, "bob", "disagreement")["post_id"] == 1  # ana: neutral, model: positive
        assert A.next_in_queue(s, "ana", "unseen")["post_id"] == 2
    with sessions.begin() as s:  # the new features work on the upgraded data
        A.skip(s, 2, "ana")
        assert A.undo_last(s, "ana")["kind"] == "skip"
        A.export_snapshot(s, data_dir)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    engine.dispose()


def test_downgrade_and_upgrade_again(engine, sessions, data_dir):
    with sessions.begin() as s:
        p = A.add_post(s, "kept", data_dir=data_dir)
        A.save_correction(s, p, "ana", "positive")
        A.skip(s, p, "bob")
        A.adjudicate(s, p, "rita", "neutral")
        A.set_aside(s, p, "offensive")
    assert downgrade_db(engine, "0001") == "0001"
    assert A.init_db(engine) == A.head_revision()
    with sessions() as s:
        assert [r["kind"] for r in A.history(s)] == ["label"]  # skip rows cannot exist in 0001
        assert A.review_counts(s)["adjudicated"] == 0  # nor adjudications and set-aside marks before 0003
        assert A.get_post(s, p)["set_aside"] is None
    with sessions.begin() as s:
        assert A.add_post(s, " kept ", data_dir=data_dir) == p  # the content hash was filled in again


def test_upgrade_from_0002_merges_duplicates_keeping_every_label(db_url, data_dir, dup_rows, merged_check):
    engine = A.create_engine_from_url(db_url)
    assert A.init_db(engine, "0002") == "0002"
    with engine.begin() as conn:
        for sql in dup_rows:
            conn.execute(text(sql))
    assert A.init_db(engine) == A.head_revision()
    merged_check(A.create_sessionmaker(engine), data_dir)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        index = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'uq_posts_source'").scalar()
        assert "WHERE source <> 'upload'" in index  # the batch rebuild kept the partial index
    # Downgrade keeps the merge (the duplicates are gone for good); upgrading again is clean.
    assert downgrade_db(engine, "0002") == "0002"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posts")).scalar() == 3
        assert conn.execute(text("SELECT count(*) FROM annotations")).scalar() == 6
    assert A.init_db(engine) == A.head_revision()
    engine.dispose()


def test_migration_hash_is_the_store_hash():
    import importlib

    migration = importlib.import_module("annotations.migrations.versions.0003_one_post_per_content")
    for image, text_ in [(None, "x"), ("a" * 64, "  Caf\u00e9\n"), ("b" * 64, "Cafe\u0301"), (None, "")]:
        assert migration._content_sha256(image, text_) == A.content_sha256(image, text_)


def test_unknown_revision_fails(db_url):
    engine = A.create_engine_from_url(db_url)
    with pytest.raises(Exception, match="9999"):
        A.init_db(engine, "9999")
    engine.dispose()


def test_db_cli_migrates(db_url):
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", "annotations.db", "--db", db_url], capture_output=True, text=True,
                         check=True, cwd=Path(A.__file__).parents[1])
    assert out.stdout.strip() == A.head_revision()

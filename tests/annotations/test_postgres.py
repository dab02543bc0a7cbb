"""The store against a real PostgreSQL server, when MMSA_TEST_PG_URL names one.

Each test works in a fresh schema that is dropped afterwards, so a shared database stays clean.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, make_url, select, text

import annotations as A
from annotations.models import Annotation

PG_URL = os.environ.get("MMSA_TEST_PG_URL")


@pytest.fixture
def pg_url():
    if not PG_URL:
        pytest.skip("MMSA_TEST_PG_URL not set: no PostgreSQL server to test against "
                    "(e.g. postgresql+psycopg2://mmsa:mmsa@localhost/mmsa_test)")
    schema = f"mmsa_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def pg(pg_url):
    engine = A.create_engine_from_url(pg_url)
    assert engine.dialect.name == "postgresql"
    yield engine
    engine.dispose()


def test_pg_store_roundtrip(pg, data_dir, roundtrip):
    assert A.init_db(pg) == A.head_revision()
    ids = roundtrip(A.create_sessionmaker(pg), data_dir, "pg")
    with A.create_sessionmaker(pg)() as s:
        item = A.next_in_queue(s, "someone-else", "conflict", data_dir=data_dir)
        assert item["post_id"] == ids["post_id"]
        assert A.stats(s)["labels"]["negative"] == 1


def test_pg_upgrade_from_0001_keeps_data(pg, old_rows):
    A.init_db(pg, "0001")
    with pg.begin() as conn:
        for sql in old_rows:
            conn.execute(text(sql))
        for table in ("posts", "predictions", "annotators", "annotations"):  # explicit ids above
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    assert A.init_db(pg) == A.head_revision()
    sessions = A.create_sessionmaker(pg)
    with sessions.begin() as s:
        assert A.current_labels(s, 1) == {"ana": "neutral"}
        assert A.get_post(s, 1)["prediction"]["prediction_id"] == 3
        assert A.next_in_queue(s, "bob", "least_confident")["post_id"] == 2
        A.skip(s, 2, "ana")
        assert A.undo_last(s, "ana")["kind"] == "skip"


def test_pg_upgrade_from_0002_merges_duplicates(pg, data_dir, dup_rows, merged_check):
    A.init_db(pg, "0002")
    with pg.begin() as conn:
        for sql in dup_rows:
            conn.execute(text(sql))
        for table in ("posts", "predictions", "annotators", "annotations"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    assert A.init_db(pg) == A.head_revision()
    merged_check(A.create_sessionmaker(pg), data_dir)
    from annotations.db import downgrade_db

    assert downgrade_db(pg, "0002") == "0002" and A.init_db(pg) == A.head_revision()


def test_pg_review_export_and_set_aside(pg, data_dir, jpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_IMAGES_IN_DB", "0")  # no copy in the database: a lost file cannot come back
    A.init_db(pg)
    sessions = A.create_sessionmaker(pg)
    with sessions.begin() as s:
        gone = A.add_post(s, "gone", jpeg("gone"), data_dir=data_dir)  # oldest: first in the unseen queue
        post = A.add_post(s, "same", jpeg("pg"), data_dir=data_dir)
        assert A.add_post(s, "same ", jpeg("pg"), data_dir=data_dir) == post  # one post per content
        A.save_correction(s, post, "ana", "positive", note="bright")
        A.save_correction(s, post, "bob", "negative", note="irony")
        missing = Path(A.get_post(s, gone, data_dir)["image_path"])
    with sessions.begin() as s:
        [item] = A.disputed_posts(s)
        assert item["tie"] and [r["note"] for r in item["labels"]] == ["bright", "irony"]
        A.adjudicate(s, post, "rita", "negative")
        assert A.review_counts(s) == {"disputed": 1, "pending": 0, "adjudicated": 1}
        manifest = A.export_snapshot(s, data_dir, tmp_path / "out")
    assert [(r["post_id"], r["label"]) for r in A.load_export(manifest["path"])] == [(post, "negative")]
    missing.unlink()
    with sessions() as s:
        assert A.next_in_queue(s, "cid", "unseen", data_dir=data_dir)["post_id"] == post
    with sessions() as s:  # set aside in its own transaction, after the reading session ended
        assert A.get_post(s, gone)["set_aside"] == "image file missing"
        assert A.progress(s, "cid") == {"done": 0, "skipped": 0, "remaining": 1, "total": 1}


def test_pg_concurrent_writers(pg, data_dir):
    A.init_db(pg)
    sessions = A.create_sessionmaker(pg)
    with sessions.begin() as s:
        post = A.add_post(s, "contested", data_dir=data_dir)

    def write(i: int) -> None:
        for j in range(20):
            with sessions.begin() as s:  # every writer also races to create the "team" annotator
                A.save_correction(s, post, "team" if j % 2 else f"w{i}", A.LABELS[j % 3], note=f"w{i}#{j}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    with sessions() as s:
        assert s.scalar(select(func.count(func.distinct(Annotation.note)))) == 80
        assert len(A.list_annotators(s)) == 5


def test_pg_one_active_job_even_when_two_replicas_start_at_once(pg):
    from annotations.jobs import JobBusy, start_job

    A.init_db(pg)
    sessions = A.create_sessionmaker(pg)

    def start(who):
        try:
            with sessions.begin() as s:
                return start_job(s, "retrain", requested_by=who)["job_id"]
        except JobBusy:
            return None

    with ThreadPoolExecutor(4) as pool:
        started = [j for j in pool.map(start, ["a", "b", "c", "d"]) if j is not None]
    assert len(started) == 1  # the partial unique index lets exactly one through


def test_pg_keeps_uploaded_images_in_the_database(pg, data_dir, monkeypatch):
    """With PostgreSQL the bytes go into image_blobs by default: a wiped data folder loses no image."""
    from pathlib import Path

    from annotations.blobs import restore_images
    from tests.annotations.conftest import fake_jpeg

    monkeypatch.delenv("MMSA_IMAGES_IN_DB", raising=False)
    A.init_db(pg)
    sessions = A.create_sessionmaker(pg)
    with sessions.begin() as s:
        first = A.add_post(s, "restart me", fake_jpeg("pg-a"), data_dir=data_dir)
        A.add_post(s, "me too", fake_jpeg("pg-b"), data_dir=data_dir)
        A.add_post(s, "same image again", fake_jpeg("pg-a"), data_dir=data_dir)  # one blob per image
        A.save_correction(s, first, "ana", "positive")
    for path in (data_dir / "images").rglob("*.jpg"):
        path.unlink()  # the Space restarted
    with sessions.begin() as s:
        assert s.execute(text("SELECT count(*) FROM image_blobs")).scalar() == 2
        assert restore_images(s, data_dir) == 2
        got = A.get_post(s, first, data_dir)
        assert Path(got["image_path"]).read_bytes() == fake_jpeg("pg-a")
        assert A.current_labels(s, first) == {"ana": "positive"}


def test_pg_schema_matches_models(pg):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from annotations.models import Base

    A.init_db(pg)
    with pg.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []

"""Fixtures for the annotation-store tests: a fresh migrated SQLite database in a temp dir."""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from annotations import create_engine_from_url, create_sessionmaker, init_db
from annotations.models import Adjudication, Annotation, Annotator, Export, ModelVersion, Post, Prediction

TABLES = {
    "posts": Post, "predictions": Prediction, "annotators": Annotator,
    "annotations": Annotation, "model_versions": ModelVersion, "exports": Export, "adjudications": Adjudication,
}


def fake_jpeg(seed: str) -> bytes:
    """A tiny real JPEG whose pixels come from `seed` (the store decodes what it stores): same seed, same bytes."""
    import hashlib
    import io

    from PIL import Image

    pixels = hashlib.sha256(seed.encode()).digest()[:12]  # 2x2 RGB
    out = io.BytesIO()
    Image.frombytes("RGB", (2, 2), pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'annotations.sqlite'}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated to head once per test session; tests get a copy (migrating takes a while)."""
    path = tmp_path_factory.mktemp("template") / "annotations.sqlite"
    engine = create_engine_from_url(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the main file
    return path


@pytest.fixture
def engine(db_url: str, data_dir: Path, migrated_template: Path) -> Iterator[Engine]:
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, data_dir / "annotations.sqlite")
    engine = create_engine_from_url(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return create_sessionmaker(engine)


@pytest.fixture
def row_counts(sessions: sessionmaker[Session]) -> Callable[[], dict[str, int]]:
    """Call it to get {table: number of rows} now."""
    def count() -> dict[str, int]:
        with sessions() as s:
            return {name: s.scalar(select(func.count()).select_from(model)) for name, model in TABLES.items()}
    return count


@pytest.fixture
def image_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a fake JPEG named `<seed>.jpg` and return its path."""
    def make(seed: str) -> Path:
        path = tmp_path / "incoming" / f"{seed}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fake_jpeg(seed))
        return path
    return make


def store_roundtrip(sessions: sessionmaker[Session], data_dir: Path, tag: str) -> dict[str, Any]:
    """Write one row to every table through the public API and read each back; shared with the
    PostgreSQL test. `tag` keeps names unique when the database is not fresh."""
    import annotations as A

    ckpt = data_dir / f"{tag}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"weights")
    with sessions.begin() as s:
        mv = A.register_model_version(s, f"model-{tag}", ckpt, metrics={"val_acc": 0.7}, make_default=True)
        post = A.add_post(s, "a sunny day", fake_jpeg(tag), f"test:{tag}", data_dir,
                          text_label="positive", image_label="negative")
        pred = A.record_prediction(s, post, "positive", [0.1, 0.2, 0.7], f"model-{tag}", conflict=0.4)
        ann = A.save_correction(s, post, f"ana-{tag}", "negative", note="irony",
                                rationale=["sunny"], shown_prediction_id=pred)
    with sessions.begin() as s:
        export = A.export_snapshot(s, data_dir, data_dir / "exports")
    with sessions() as s:
        got = A.get_post(s, post, data_dir)
        assert got["text"] == "a sunny day" and got["source"] == f"test:{tag}"
        assert Path(got["image_path"]).read_bytes() == fake_jpeg(tag)
        assert (got["text_label"], got["image_label"], got["conflict"]) == ("positive", "negative", 1.0)
        p = got["prediction"]
        assert p["prediction_id"] == pred and p["model_version_id"] == mv["model_version_id"]
        assert p["probs"] == {"negative": 0.1, "neutral": 0.2, "positive": 0.7} and p["conflict"] == 0.4
        [row] = A.history(s, post_id=post)
        assert row["annotation_id"] == ann and row["annotator"] == f"ana-{tag}"
        assert (row["label"], row["note"], row["rationale"], row["shown_prediction_id"]) == (
            "negative", "irony", ["sunny"], pred)
        assert row["created_at"].endswith("+00:00") and row["current"] is True
        assert f"ana-{tag}" in [a["name"] for a in A.list_annotators(s)]
        assert A.get_default_model(s)["name"] == f"model-{tag}"
        assert A.get_model_version(s, f"model-{tag}")["metrics"] == {"val_acc": 0.7}
        exported = s.get(Export, export["export_id"])
        assert exported is not None and exported.manifest["content_sha256"] == export["content_sha256"]
    rows = A.load_export(export["path"])
    assert [r for r in rows if r["post_id"] == post][0]["label"] == "negative"
    return {"post_id": post, "prediction_id": pred, "annotation_id": ann, "export": export}


@pytest.fixture
def roundtrip() -> Callable[..., dict[str, Any]]:
    return store_roundtrip


@pytest.fixture
def jpeg() -> Callable[[str], bytes]:
    """fake_jpeg as a fixture: `jpeg("seed")` -> bytes."""
    return fake_jpeg


# A revision-0001 database's contents (raw SQL: the 0001 schema has no `kind` column).
OLD_ROWS = [
    "INSERT INTO posts (id, text, source, text_label, image_label, created_at) VALUES "
    "(1, 'old one', 'mvsa-single:1', 'positive', 'negative', '2024-01-01 00:00:00'), "
    "(2, 'old two', 'upload', NULL, NULL, '2024-01-01 00:00:00'), "
    "(3, 'old three', 'upload', NULL, NULL, '2024-01-01 00:00:00')",
    "INSERT INTO predictions (id, post_id, model_name, label, p_negative, p_neutral, p_positive, created_at) "
    "VALUES (1, 1, 'm0', 'positive', 0.2, 0.2, 0.6, '2024-01-01 00:00:00'), "
    "(2, 2, 'm0', 'negative', 0.4, 0.3, 0.3, '2024-01-01 00:00:00'), "
    "(3, 1, 'm0', 'positive', 0.1, 0.1, 0.8, '2024-01-02 00:00:00')",
    "INSERT INTO annotators (id, name, created_at) VALUES (1, 'ana', '2024-01-01 00:00:00')",
    "INSERT INTO annotations (id, post_id, annotator_id, label, note, created_at) VALUES "
    "(1, 1, 1, 'negative', 'old note', '2024-01-03 00:00:00'), (2, 1, 1, 'neutral', NULL, '2024-01-04 00:00:00')",
]


@pytest.fixture
def old_rows() -> list[str]:
    return OLD_ROWS


# A revision-0002 database with duplicate posts (raw SQL: 0002 has no content_sha256).
# Posts 1, 2 and 3 are one content (2 differs only by surrounding whitespace; 3 came from MVSA);
# 4 and 5 are one text-only content ("Café" composed vs decomposed); 6 has another image.
DUP_IMAGE = fake_jpeg("dup")
DUP_SHA = hashlib.sha256(DUP_IMAGE).hexdigest()
DUP_ROWS_0002 = [
    "INSERT INTO posts (id, image_sha256, image_ext, text, source, text_label, image_label, created_at, "
    "latest_prediction_id, confidence, conflict, disputed) VALUES "
    f"(1, '{DUP_SHA}', 'jpg', 'Same post', 'upload', NULL, NULL, '2024-01-01 00:00:00', 1, 0.7, NULL, 1), "
    f"(2, '{DUP_SHA}', 'jpg', '  Same post \n', 'upload', NULL, NULL, '2024-01-02 00:00:00', "
    "2, 0.6, 0.3, 2), "
    f"(3, '{DUP_SHA}', 'jpg', 'Same post', 'mvsa-single:9', 'positive', 'negative', '2024-01-03 00:00:00', "
    "NULL, NULL, 1.0, NULL), "
    "(4, NULL, NULL, 'Caf\u00e9', 'upload', NULL, NULL, '2024-01-04 00:00:00', NULL, NULL, NULL, NULL), "
    "(5, NULL, NULL, 'Cafe\u0301', 'upload', NULL, NULL, '2024-01-05 00:00:00', NULL, NULL, NULL, NULL), "
    f"(6, '{'b' * 64}', 'jpg', 'Same post', 'upload', NULL, NULL, '2024-01-06 00:00:00', NULL, NULL, NULL, NULL)",
    "INSERT INTO predictions (id, post_id, model_name, label, p_negative, p_neutral, p_positive, conflict, "
    "created_at) VALUES (1, 1, 'm0', 'positive', 0.1, 0.2, 0.7, NULL, '2024-01-01 00:00:00'), "
    "(2, 2, 'm0', 'negative', 0.6, 0.2, 0.2, 0.3, '2024-01-02 00:00:00')",
    "INSERT INTO annotators (id, name, created_at) VALUES (1, 'ana', '2024-01-01 00:00:00'), "
    "(2, 'bob', '2024-01-01 00:00:00')",
    "INSERT INTO annotations (id, post_id, annotator_id, kind, label, note, shown_prediction_id, created_at) VALUES "
    "(1, 1, 1, 'label', 'positive', 'first look', 1, '2024-01-07 00:00:00'), "
    "(2, 2, 2, 'label', 'negative', 'sarcasm', 2, '2024-01-08 00:00:00'), "
    "(3, 3, 1, 'label', 'neutral', 'changed my mind', NULL, '2024-01-09 00:00:00'), "
    "(4, 4, 2, 'label', 'positive', NULL, NULL, '2024-01-10 00:00:00'), "
    "(5, 5, 1, 'skip', NULL, NULL, NULL, '2024-01-11 00:00:00'), "
    "(6, 5, 2, 'label', 'neutral', 'second thoughts', NULL, '2024-01-12 00:00:00')",
]


def check_merged_duplicates(sessions: sessionmaker[Session], data_dir: Path) -> None:
    """What migration 0003 must make of DUP_ROWS_0002; shared with the PostgreSQL test."""
    import annotations as A

    with sessions() as s:
        assert s.scalars(select(Post.id).order_by(Post.id)).all() == [1, 4, 6]
        assert s.scalar(select(func.count()).select_from(Annotation)) == 6  # every row kept
        assert s.scalar(select(func.count()).select_from(Prediction)) == 2
        assert A.current_labels(s, 1) == {"ana": "neutral", "bob": "negative"}  # ana's later label is in force
        notes = {r["note"] for r in A.history(s, post_id=1)}
        assert notes == {"first look", "sarcasm", "changed my mind"}
        assert A.current_labels(s, 4) == {"bob": "neutral"}
        kept = s.get(Post, 1)
        assert (kept.source, kept.text_label, kept.image_label) == ("mvsa-single:9", "positive", "negative")
        assert (kept.latest_prediction_id, kept.confidence, kept.conflict, kept.disputed) == (2, 0.6, 1.0, 3)
        assert s.get(Post, 4).disputed is None and s.get(Post, 6).disputed is None
        assert kept.content_sha256 == A.content_sha256(DUP_SHA, "Same post")
        assert A.get_post(s, 1)["prediction"]["prediction_id"] == 2
    with sessions.begin() as s:  # the same content added again is the kept post
        assert A.add_post(s, " Same post", DUP_IMAGE, data_dir=data_dir) == 1
        assert A.add_post(s, "Caf\u00e9", data_dir=data_dir) == 4
        verdict = A.post_verdicts(s, [1])[1]
        assert verdict["tie"] and verdict["majority"] is None
        assert [(r["annotator"], r["label"], r["note"]) for r in verdict["labels"]] == [
            ("ana", "neutral", "changed my mind"), ("bob", "negative", "sarcasm")]


@pytest.fixture
def dup_rows() -> list[str]:
    return DUP_ROWS_0002


@pytest.fixture
def merged_check() -> Callable[[sessionmaker[Session], Path], None]:
    return check_merged_duplicates

"""Where the app keeps its data and which model it serves, read once from the environment.

    MMSA_DATA_DIR    folder for the SQLite file, uploaded images, exports and retrained models
                     (default ./data; on a Hugging Face Space with persistent storage, /data)
    MMSA_DB_URL      any SQLAlchemy URL (default: SQLite at $MMSA_DATA_DIR/annotations.sqlite)
    MMSA_CHECKPOINT  the model served by default unless the database has a default model version
                     (a promoted retrain); without either, the shipped mmsa_core/weights/default.pt
    MMSA_MVSA_DIR    MVSA-Single, needed only by "retrain now" (default ../shared/data/mvsa-single)
    SPACE_ID         set by Hugging Face Spaces: turns on the sign-in button and the storage check
    MMSA_ADMINS      on a Space: Hugging Face user names (comma-separated) who may export, retrain, pick the model
    MMSA_ANNOTATORS  on a Space, when set: the only other Hugging Face users who may annotate
    MMSA_LIMITS      "off": no rate limits, slow CAM methods for everyone, one shared model queue (benchmarks only)
    MMSA_RATE_PREDICT, MMSA_RATE_EXPLAIN, MMSA_RATE_CORRECT   per-person limits, e.g. "60/minute"
    MMSA_RETRAIN_COOLDOWN_S   seconds between the end of a retrain and the next start (default 600)
    MMSA_EXPORTS_KEEP         export snapshots (and their zips) kept in <data>/exports (default 5)
    MMSA_QUEUE_MAX            requests waiting in Gradio's queue before new ones are refused (default 64)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SPACE_PERSISTENT_DIR = Path("/data")  # where a Space mounts its persistent storage, when it has some
DEFAULT_MVSA_DIR = "../shared/data/mvsa-single"


@dataclass(frozen=True)
class AppSettings:
    data_dir: Path  # images, SQLite file, exports, retrained checkpoints
    db_url: str | None  # None: SQLite inside data_dir
    checkpoint: str | None  # served unless the database has a default model version; None: the shipped one
    mvsa_dir: Path  # MVSA-Single for retraining
    space_id: str | None  # the Hugging Face Space this runs on, if any
    admins: str | None = None  # MMSA_ADMINS: Hugging Face user names with the admin role, comma-separated
    annotators: str | None = None  # MMSA_ANNOTATORS: when set, the only other users who may annotate on a Space
    limits_enabled: bool = True  # rate limits and admin-only slow CAM methods (off only to benchmark without them)
    rate_rules: tuple[tuple[str, str], ...] = ()  # (bucket, "60/minute") overrides of webapp.ratelimit's defaults
    retrain_cooldown_s: float = 600.0  # after a retrain ends, the next may start this much later
    exports_keep: int = 5  # snapshots and zips kept in <data>/exports
    queue_max: int = 64  # Gradio queue size; beyond it new requests are refused at once

    @property
    def on_space(self) -> bool:
        return bool(self.space_id)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "AppSettings":
        """Settings from environment variables (see the module docstring); reads nothing on disk but /data."""
        env = dict(os.environ if env is None else env)
        space_id = env.get("SPACE_ID") or None
        data_dir = env.get("MMSA_DATA_DIR")
        if not data_dir:
            # On a Space, /data exists only when persistent storage is switched on: use it by default.
            data_dir = str(SPACE_PERSISTENT_DIR) if space_id and SPACE_PERSISTENT_DIR.is_dir() else "data"
        rules = tuple((bucket, env[f"MMSA_RATE_{bucket.upper()}"]) for bucket in ("predict", "explain", "correct")
                      if env.get(f"MMSA_RATE_{bucket.upper()}"))
        return cls(data_dir=Path(data_dir), db_url=env.get("MMSA_DB_URL") or None,
                   checkpoint=env.get("MMSA_CHECKPOINT") or None,
                   mvsa_dir=Path(env.get("MMSA_MVSA_DIR") or DEFAULT_MVSA_DIR), space_id=space_id,
                   admins=env.get("MMSA_ADMINS") or None, annotators=env.get("MMSA_ANNOTATORS") or None,
                   limits_enabled=env.get("MMSA_LIMITS", "on").strip().lower() not in ("off", "0", "false", "no"),
                   rate_rules=rules, retrain_cooldown_s=float(env.get("MMSA_RETRAIN_COOLDOWN_S") or 600),
                   exports_keep=int(env.get("MMSA_EXPORTS_KEEP") or 5), queue_max=int(env.get("MMSA_QUEUE_MAX") or 64))


def storage_warning(settings: AppSettings) -> str | None:
    """A banner text when saved work will not survive a restart; None when storage is persistent.

    Only a Space loses its disk on restart; there, the data must live under /data (persistent
    storage) or in an external database (MMSA_DB_URL).
    """
    if not settings.on_space:
        return None
    data = settings.data_dir.resolve()
    on_persistent = SPACE_PERSISTENT_DIR.is_dir() and (data == SPACE_PERSISTENT_DIR
                                                       or SPACE_PERSISTENT_DIR in data.parents)
    if on_persistent:
        return None
    if settings.db_url and not settings.db_url.startswith("sqlite"):
        return (f"Uploaded images and exports live in {settings.data_dir}, which this Space loses on restart "
                "(the corrections themselves are safe in the external database). "
                "Enable persistent storage and set MMSA_DATA_DIR=/data to keep them.")
    return ("Storage is not persistent: corrections saved here are lost when this Space restarts. "
            "Enable persistent storage in the Space settings (it mounts /data) and set MMSA_DATA_DIR=/data, "
            "or point MMSA_DB_URL at an external database.")

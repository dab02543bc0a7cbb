"""Where the app keeps its data and which model it serves, read once from the environment.

    MMSA_DATA_DIR    folder for the SQLite file, uploaded images, exports and retrained models
                     (default ./data; on a Hugging Face Space with persistent storage, /data)
    MMSA_DB_URL      any SQLAlchemy URL (default: SQLite at $MMSA_DATA_DIR/annotations.sqlite)
    MMSA_CHECKPOINT  the model served by default unless the database has a default model version
                     (a promoted retrain); without either, the shipped mmsa_core/weights/default.pt
    MMSA_MVSA_DIR    MVSA-Single, needed only by "retrain now" (default ../shared/data/mvsa-single)
    SPACE_ID         set by Hugging Face Spaces: turns on the sign-in button and the storage check
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
        return cls(data_dir=Path(data_dir), db_url=env.get("MMSA_DB_URL") or None,
                   checkpoint=env.get("MMSA_CHECKPOINT") or None,
                   mvsa_dir=Path(env.get("MMSA_MVSA_DIR") or DEFAULT_MVSA_DIR), space_id=space_id)


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

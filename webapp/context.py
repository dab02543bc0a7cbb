"""What the handlers share: settings, the database (opened on first use) and the loaded models."""
from __future__ import annotations

import logging
import threading

from .examples import load_examples, seed_examples
from .models import ModelChoice, PredictorCache, list_model_choices, resolve_choice
from .retrain_job import RetrainJob
from .settings import AppSettings

log = logging.getLogger(__name__)


class AppContext:
    """Created by ``build_demo``; nothing touches the disk, the database or a model until a handler asks."""

    def __init__(self, settings: AppSettings | None = None, seed: bool = True):
        self.settings = settings or AppSettings.from_env()
        self.models = PredictorCache()
        self.retrain = RetrainJob()
        self.seed = seed  # put the example posts into an empty database
        self._sessions = None
        self._lock = threading.Lock()

    @property
    def db_url(self) -> str:
        from annotations import default_db_url

        return self.settings.db_url or default_db_url(self.settings.data_dir)

    @property
    def sessions(self):
        """The sessionmaker; the first call creates the database, runs the migrations and seeds the examples."""
        with self._lock:
            if self._sessions is None:
                from annotations import create_engine_from_url, create_sessionmaker, init_db

                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                engine = create_engine_from_url(self.db_url)
                init_db(engine)
                sessions = create_sessionmaker(engine)
                if self.seed:
                    seed_examples(sessions, self.settings.data_dir, load_examples())
                self._sessions = sessions
            return self._sessions

    def model_choices(self) -> list[ModelChoice]:
        from annotations import list_model_versions

        with self.sessions() as s:
            versions = list_model_versions(s)
        return list_model_choices(self.settings.data_dir, versions, self.settings.checkpoint)

    def warm_up(self) -> None:
        """Open the database and load the default model now, so the first click does not wait for them."""
        try:
            self.model(None)
        except Exception:  # reported again, clearly, on the first click
            log.exception("warm-up failed")

    def model(self, value: str | None) -> tuple[ModelChoice, object]:
        """The choice and its loaded ``Predictor`` for a selector value ("" or None: the default model)."""
        choice = resolve_choice(value, self.model_choices())
        return choice, self.models.get(choice.path)

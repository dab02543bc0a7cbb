"""What the handlers share: settings, the database (opened on first use), who may do what, and the models."""
from __future__ import annotations

import logging
import threading

from .examples import load_examples, seed_examples
from .identity import AccessControl, Identity, client_address, decide_mode
from .models import ModelChoice, PredictorCache, list_model_choices, resolve_choice
from .prefetch import BackgroundWork
from .ratelimit import RateLimits
from .retrain_job import RetrainJobs
from .settings import AppSettings

log = logging.getLogger(__name__)


class AppContext:
    """Created by ``build_demo``; nothing touches the disk, the database or a model until a handler asks."""

    def __init__(self, settings: AppSettings | None = None, seed: bool = True):
        self.settings = settings or AppSettings.from_env()
        self.models = PredictorCache()
        self.retrain = RetrainJobs(self)  # a job in the database, run by its own process
        self.limits = RateLimits(dict(self.settings.rate_rules), enabled=self.settings.limits_enabled)
        self.background = BackgroundWork()  # posts prepared ahead and explanations (threads start on first use)
        self.seed = seed  # put the example posts into an empty database
        self._sessions = None
        self._access: AccessControl | None = None
        self._lock, self._access_lock = threading.Lock(), threading.Lock()

    @property
    def db_url(self) -> str:
        from annotations import default_db_url

        return self.settings.db_url or default_db_url(self.settings.data_dir)

    @property
    def sessions(self):
        """The sessionmaker; the first call creates the database, runs the migrations, repairs the image folder
        (only .jpg/.png/.gif/.webp files; missing ones restored from the database) and seeds the examples."""
        with self._lock:
            if self._sessions is None:
                from annotations import create_engine_from_url, create_sessionmaker, init_db
                from annotations.blobs import repair_images, restore_images

                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                engine = create_engine_from_url(self.db_url)
                init_db(engine)
                sessions = create_sessionmaker(engine)
                with sessions.begin() as s:
                    repaired = repair_images(s, self.settings.data_dir)
                    restored = restore_images(s, self.settings.data_dir)
                if any(repaired.values()) or restored:
                    log.warning("image folder: %s, %d restored from the database", repaired, restored)
                if self.seed:
                    seed_examples(sessions, self.settings.data_dir, load_examples())
                self._sessions = sessions
            return self._sessions

    @property
    def access(self) -> AccessControl:
        """The access mode and identity lookups, decided on first use (``launch_kwargs`` asks at start-up)."""
        with self._access_lock:
            if self._access is None:
                from annotations.accounts import count_accounts

                from .auth import sign_in_available

                sign_in = self.settings.on_space and sign_in_available(self.settings.on_space)
                n_accounts = 0
                if not sign_in:
                    with self.sessions() as s:
                        n_accounts = count_accounts(s)
                mode = decide_mode(self.settings.on_space, sign_in, n_accounts)
                self._access = AccessControl(mode, lambda: self.sessions, self.settings.admins,
                                             self.settings.annotators)
                log.info("access mode: %s", mode)
            return self._access

    def identify(self, request=None, profile=None, typed_name: str | None = None) -> Identity:
        """Who sends this request (see ``webapp.identity``)."""
        return self.access.identify(request, profile, typed_name)

    def check_rate(self, bucket: str, who: Identity, request, action: str) -> None:
        """A ``gr.Error`` with the wait when ``who`` (or, anonymous, their address) used up ``bucket``."""
        key = who.limit_key or "addr:" + client_address(request, behind_proxy=self.settings.on_space)
        self.limits.check(bucket, key, action)

    def check_login(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` callable: an account's password, at most a few tries a minute per name."""
        if self.limits.wait_s("login", str(name)[:64]):
            log.warning("login for %r refused: too many attempts", str(name)[:64])
            return False
        return self.access.check_login(name, password)

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

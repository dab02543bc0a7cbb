"""Which checkpoints the model selector offers, and one cached ``Predictor`` per checkpoint.

Offered: the shipped default (``mmsa_core/weights/default.pt``), every ``*.pt`` under
``<data_dir>/models/`` (retrained models) and ``runs/``, and every model version registered in the
database. The default is the database's default model version (set when "retrain now" promotes a
model), else ``MMSA_CHECKPOINT``, else the shipped default, else the first file found.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


class ModelUnavailable(ValueError):
    """No checkpoint can be served, or the one asked for cannot be loaded; the message says why."""


@dataclass(frozen=True)
class ModelChoice:
    label: str  # what the selector shows
    path: str  # checkpoint file (the selector's value)
    name: str  # the model version name predictions are recorded under (registered name, else file stem)


def _shipped_default() -> Path:
    from mmsa_core.checkpoint import DEFAULT_CHECKPOINT  # light: no model is built

    return DEFAULT_CHECKPOINT


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def list_model_choices(data_dir: Path, versions: list[dict], override: str | None = None) -> list[ModelChoice]:
    """Every servable checkpoint, the default first; ``versions`` as ``annotations.list_model_versions``."""
    found: dict[str, tuple[str, str]] = {}  # resolved path -> (label, name), in order of discovery

    def add(path: Path, label: str, name: str | None = None) -> None:
        if path.is_file():
            found.setdefault(str(path.resolve()), (label, name or path.stem))

    def add_version(v: dict) -> None:
        flag = ", default" if v["is_default"] else ""
        add(Path(v["checkpoint_path"]), f"{v['name']} (registered{flag})", v["name"])

    for v in versions:  # a promoted retrain wins: "retrain now" changes what the app serves
        if v["is_default"]:
            add_version(v)
    if override:
        add(Path(override), f"{Path(override).name} (MMSA_CHECKPOINT)")
    add(_shipped_default(), "default.pt (shipped)")
    for v in versions:
        add_version(v)
    for folder in (Path(data_dir) / "models", REPO / "runs"):
        for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
            add(path, _display(path))
    return [ModelChoice(label, path, name) for path, (label, name) in found.items()]


def resolve_choice(value: str | None, choices: list[ModelChoice]) -> ModelChoice:
    """The choice for a selector value: a listed path, a label, a version name or "" (the default).

    Only listed checkpoints are served: an API caller cannot make the app read an arbitrary file."""
    if not choices:
        raise ModelUnavailable(
            f"No model checkpoint found: expected {_shipped_default()}, *.pt under runs/ or the data folder's "
            "models/, or MMSA_CHECKPOINT pointing at one. Train one with `python -m mmsa_core.train`.")
    if not value:
        return choices[0]
    for c in choices:
        if value in (c.path, c.label, c.name):
            return c
    raise ModelUnavailable(f"Unknown model {value!r}; choose from {[c.label for c in choices]}")


class ServedModel:
    """A loaded ``Predictor`` as the app serves it: predictions run side by side, explanations take turns.

    ``Predictor.explain`` backpropagates through the shared model and then clears its ``.grad``; two at once
    on one model corrupt each other (segfaults and "cannot call bump_version() on undefined tensor" under
    4 concurrent explanations). Plain predictions run without gradients and are safe alongside.
    """

    def __init__(self, predictor):
        self.predictor = predictor
        self._explaining = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.predictor, name)  # predict, predict_batch, labels, meta, name, device

    def explain(self, *args, **kwargs):
        with self._explaining:
            return self.predictor.explain(*args, **kwargs)


class PredictorCache:
    """Loads each checkpoint once (keyed by path and modification time), keeping the ``size`` most recent."""

    def __init__(self, size: int = 2, device: str = "auto"):
        self.size, self.device = size, device
        self._items: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> ServedModel:
        """The ``mmsa_core.predictor.Predictor`` for a checkpoint file, wrapped as a ``ServedModel``."""
        p = Path(path)
        try:
            key = (str(p.resolve()), p.stat().st_mtime_ns)
        except OSError as e:
            raise ModelUnavailable(f"Checkpoint {path} is gone: pick another model") from e
        with self._lock:  # one load at a time; others wait for it instead of loading the same file twice
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            from mmsa_core.predictor import Predictor

            try:
                predictor = Predictor.from_checkpoint(p, device=self.device)
            except (FileNotFoundError, RuntimeError, ValueError) as e:
                raise ModelUnavailable(f"Cannot load the model {p.name}: {e}") from e
            log.info("loaded %s on %s", p, predictor.device)
            self._items[key] = ServedModel(predictor)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return self._items[key]

    def loaded(self) -> list[str]:
        return [k[0] for k in self._items]


def gpu_decorator():
    """``spaces.GPU`` on a Hugging Face ZeroGPU Space (package ``spaces`` importable), else a no-op."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU

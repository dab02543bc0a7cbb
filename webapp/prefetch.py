"""What the Annotate tab keeps between requests, per browser session: the post on screen (so that a late
explanation for another post is dropped), the next post prepared in the background, and the explanations
computed so far. Everything here is in memory and bounded; a restart only costs a recomputation.

Background work runs on two small thread pools (``BackgroundWork``): one prepares posts (queue pick,
prediction, display image), one computes explanations; neither ever holds a database session open while a
model runs.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

SESSIONS_KEPT = 4096  # browser sessions remembered (each: a post id and one prepared post)
EXPLANATIONS_KEPT = 64  # rendered explanation cards (each ~100 kB of data: URLs)


class Stale(Exception):
    """The work was for a post that no session shows or will show next: not done."""


class BackgroundWork:
    """Two thread pools, created on first use; ``wait_idle`` lets tests see a quiet database."""

    def __init__(self, post_workers: int = 4, explain_workers: int = 2):
        self._sizes = {"posts": post_workers, "explain": explain_workers}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, pool: str, fn: Callable, *args) -> Future:
        with self._idle:
            if pool not in self._pools:
                self._pools[pool] = ThreadPoolExecutor(self._sizes[pool], thread_name_prefix=f"mmsa-{pool}")
            self._pending += 1
        future = self._pools[pool].submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no background job runs or waits (True), or ``timeout`` seconds passed (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Screens:
    """Per Gradio session (``request.session_hash``): the post on screen and the prepared next post.

    A prepared post is stored with the key it was made for (annotator, strategy, model, the post it follows)
    and handed out once, only for the same key."""

    def __init__(self, size: int = SESSIONS_KEPT):
        self._shown: _Lru = _Lru(size)
        self._next: _Lru = _Lru(size)
        self._lock = threading.Lock()

    def show(self, session: str | None, post_id: int | None) -> None:
        if session:
            with self._lock:
                self._shown.put(session, post_id)

    def on_screen(self, session: str | None) -> int | None:
        with self._lock:
            return self._shown.get(session)

    def is_stale(self, session: str | None, post_id: int) -> bool:
        """True when this session is known to show another post (or none) now."""
        with self._lock:
            return bool(session) and session in self._shown and self._shown[session] != post_id

    def wanted(self, post_id: int) -> bool:
        """Whether some session shows this post, or has it prepared as its next one."""
        with self._lock:
            if post_id in self._shown.values():
                return True
            for _key, future in self._next.values():
                if future.done() and not future.exception() and getattr(future.result(), "post_id", None) == post_id:
                    return True
            return False

    def set_next(self, session: str | None, key: Hashable, future: Future) -> None:
        if session:
            with self._lock:
                self._next.put(session, (key, future))

    def peek_next(self, session: str | None, after: int) -> Future | None:
        """The prepared-post future of this session when it follows post ``after`` (left in place)."""
        with self._lock:
            entry = self._next.get(session) if session else None
        return entry[1] if entry is not None and entry[0][-1] == after else None

    def take_next(self, session: str | None, key: Hashable) -> Future | None:
        """The prepared-post future made for ``key`` in this session (removed), else None."""
        with self._lock:
            entry = self._next.pop(session, None) if session else None
        if entry is None or entry[0] != key:
            return None
        return entry[1]


class FutureCache:
    """Results by key, computed once even when several callers ask at the same time; failures are not kept."""

    def __init__(self, size: int = EXPLANATIONS_KEPT):
        self._items: _Lru = _Lru(size)
        self._lock = threading.Lock()

    def get_or_submit(self, key: Hashable, submit: Callable[[], Future]) -> Future:
        """The future for ``key``; ``submit()`` starts the work when there is none (or the last one failed)."""
        with self._lock:
            future = self._items.get(key)
            if future is not None and not (future.done() and future.exception() is not None):
                self._items.move_to_end(key)
                return future
            future = submit()
            self._items.put(key, future)
            return future

    def get(self, key: Hashable) -> Future | None:
        with self._lock:
            return self._items.get(key)

    def done_value(self, key: Hashable) -> Any:
        """The value for ``key`` when it is computed already, else None."""
        with self._lock:
            future = self._items.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

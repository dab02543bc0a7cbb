"""Per-person rate limits on the model endpoints (the ``limits`` library, in-memory moving windows).

Signed-in people are keyed by their name, anonymous visitors (and everyone in open mode, where any name
can be typed) by their address. A refused call costs nothing and says how long to wait.
"""
from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from .inputs import user_error

DEFAULT_RULES = {
    "predict": "60/minute",  # a label: cheap
    "explain": "20/minute",  # heatmap + word attributions, and the faithfulness pass
    "correct": "30/minute",  # Analyze's save (uploads an image)
    "login": "10/minute",  # failed and successful password checks per account name (argon2 is costly)
}


class RateLimits:
    """``check(bucket, key)`` raises a ``gr.Error`` naming the wait when ``key`` used up ``bucket``'s rule."""

    def __init__(self, rules: dict[str, str] | None = None, enabled: bool = True):
        self.enabled = enabled
        self.rules = {bucket: parse(rule) for bucket, rule in {**DEFAULT_RULES, **(rules or {})}.items()}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def wait_s(self, bucket: str, key: str) -> float:
        """0 when one more call is allowed now (and counts it); else the seconds until it is."""
        if not self.enabled:
            return 0.0
        rule = self.rules[bucket]
        if self._limiter.hit(rule, bucket, key):
            return 0.0
        reset = self._limiter.get_window_stats(rule, bucket, key).reset_time
        return max(reset - time.time(), 0.0)

    def check(self, bucket: str, key: str, action: str) -> None:
        wait = self.wait_s(bucket, key)
        if wait:
            rule = self.rules[bucket]
            unit = rule.GRANULARITY.name if rule.multiples == 1 else f"{rule.multiples} {rule.GRANULARITY.name}s"
            raise user_error(f"Too many requests: {action} is limited to {rule.amount} per {unit}; "
                             f"try again in {math.ceil(wait)} s")

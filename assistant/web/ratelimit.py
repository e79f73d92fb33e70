"""A per-client sliding-window rate limit (in memory, one process).

Usage::

    limiter = RateLimiter(per_minute=20)
    if not limiter.allow(client_id):
        ...  # answer 429 with RATE_LIMIT_MESSAGE
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

RATE_LIMIT_MESSAGE = (
    "Trop de questions en peu de temps : merci de patienter une minute avant de poser la suivante."
)


class RateLimiter:
    """At most ``per_minute`` events per client in any 60-second window (0 = no limit)."""

    def __init__(self, per_minute: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Record one event for ``client``; False when it is over the limit (the event is not counted)."""
        if self.per_minute <= 0:
            return True
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(client, deque())
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if len(events) >= self.per_minute:
                return False
            events.append(now)
            if len(self._events) > 10000:  # forget idle clients
                for key in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window_s]:
                    del self._events[key]
            return True

    def retry_after(self, client: str) -> int:
        """Seconds until the oldest counted event of ``client`` leaves the window."""
        with self._lock:
            events = self._events.get(client)
            if not events:
                return 0
            return max(1, int(self.window_s - (self.clock() - events[0])) + 1)

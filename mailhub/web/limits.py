"""A per-client limit on costly requests, kept in memory (pure but for its own state).

For requests that change nothing, such as archive searches, a limit in the database would
add a write to every read; this one forgets on restart, which is fine for what it is
for: one client cannot keep the store's connection busy with searches for everyone else.
"""

from __future__ import annotations

from collections import OrderedDict, deque

MAX_CLIENTS = 10_000  # clients remembered; past this the longest unseen is forgotten


class Window:
    """At most `limit` requests per client in any `seconds` (0: no limit)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str, now: float) -> bool:
        """Count a request of `client` at `now` (monotonic seconds); False when it is one
        too many (a refused request is not counted)."""
        if self.limit <= 0:
            return True
        times = self._seen.pop(client, None) or deque()
        while times and times[0] <= now - self.seconds:
            times.popleft()
        allowed = len(times) < self.limit
        if allowed:
            times.append(now)
        self._seen[client] = times  # most recently seen last
        while len(self._seen) > MAX_CLIENTS:
            self._seen.popitem(last=False)
        return allowed

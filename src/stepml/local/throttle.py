"""API Gateway's request throttling, for the local HTTP API.

API Gateway throttles with a token bucket: the bucket holds at most ``burst`` tokens, refills at
``rate`` tokens per second, and each request takes one; a request that finds the bucket empty is
refused with 429 ``{"message":"Too Many Requests"}`` before any integration runs. An HTTP API's
stage sets both numbers in ``DefaultRouteSettings`` (``ThrottlingBurstLimit``,
``ThrottlingRateLimit``); without them the account's Regional quota applies (10,000 requests per
second, a burst of 5,000).

Written here rather than taken from a rate-limiting library: those count requests in fixed or
sliding windows, which admit other bursts than API Gateway's bucket does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: API Gateway's account-level quota per Region: what a stage without its own limits gets.
ACCOUNT_RATE_LIMIT = 10_000.0
ACCOUNT_BURST_LIMIT = 5_000

#: What API Gateway answers a throttled request.
THROTTLED_STATUS = 429
THROTTLED_BODY = {"message": "Too Many Requests"}


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` per second; :meth:`take` spends one.

    Thread-safe. ``clock`` (seconds, monotonic) is injectable so tests need not sleep.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 0 or burst < 0:
            raise ValueError(f"throttling limits cannot be negative (rate {rate}, burst {burst})")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(self.burst)  # a stage starts with a full bucket
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one (the request goes through); False if throttled."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


def stage_throttle(route_settings: Mapping[str, Any] | None) -> TokenBucket:
    """The bucket of a stage whose ``DefaultRouteSettings`` are ``route_settings`` (values
    resolved), falling back to the account's quota for a limit the stage does not set."""
    settings = route_settings or {}
    rate = settings.get("ThrottlingRateLimit")
    burst = settings.get("ThrottlingBurstLimit")
    return TokenBucket(
        rate=ACCOUNT_RATE_LIMIT if rate in (None, "") else float(rate),
        burst=ACCOUNT_BURST_LIMIT if burst in (None, "") else int(float(burst)),
    )

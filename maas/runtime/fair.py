"""A fair share of scarce work among tenants: the CPU of building contexts (the offline analysis
and the assembler's searches, maas.pipeline.stages).

Contexts were built first come, first served: one tenant's burst of costly context requests
(within its rate: a 32,000-character query at 10 a second) held every search connection and the
CPU, and another tenant's search waited behind all of them (0.04 s became 3.5 s). Here a freed
permit goes to the waiting tenant that holds the fewest, ties in turn (the tenant served moves
behind the others that wait), first come first served within a tenant. A tenant alone may use
every permit; with others waiting, each gets its share as permits free, so another tenant waits
for one search or analysis, not for a queue of them. Waiters wait on a future: no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Hashable


class FairShare:
    def __init__(self, permits: int) -> None:
        self.free = max(permits, 1)
        self.held: Counter[Hashable] = Counter()
        self.waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}  # in turn order

    @contextlib.asynccontextmanager
    async def turn(self, tenant: Hashable, first: bool = False) -> AsyncIterator[None]:
        """`first`: ahead of the tenant's other waiters (a context half built is finished
        before the tenant's next one is begun)."""
        await self._acquire(tenant, first)
        try:
            yield
        finally:
            self._release(tenant)

    async def _acquire(self, tenant: Hashable, first: bool) -> None:
        if self.free > 0 and not self.waiting:
            self._take(tenant)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.waiting.setdefault(tenant, deque())
        queue.appendleft(granted) if first else queue.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as it was cancelled
                self._release(tenant)
            else:
                self._forget(tenant, granted)
            raise

    def _take(self, tenant: Hashable) -> None:
        self.free -= 1
        self.held[tenant] += 1

    def _release(self, tenant: Hashable) -> None:
        self.held[tenant] -= 1
        if self.held[tenant] <= 0:
            del self.held[tenant]
        self.free += 1
        self._grant()

    def _grant(self) -> None:
        while self.free > 0 and self.waiting:
            tenant = min(self.waiting, key=lambda t: self.held[t])  # first in turn among ties
            queue = self.waiting.pop(tenant)
            granted = queue.popleft()
            if queue:
                self.waiting[tenant] = queue  # behind the others that wait
            if not granted.done():
                self._take(tenant)
                granted.set_result(None)

    def _forget(self, tenant: Hashable, granted: asyncio.Future[None]) -> None:
        queue = self.waiting.get(tenant)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(granted)
        if not queue:
            del self.waiting[tenant]

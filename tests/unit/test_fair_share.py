"""The search connections' fair share: who gets a freed permit."""

from __future__ import annotations

import asyncio

from maas.runtime.fair import FairShare


async def _use(share: FairShare, tenant: str, order: list[str], go: asyncio.Event) -> None:
    async with share.turn(tenant):
        order.append(tenant)
        await go.wait()


async def _settle() -> None:
    for _ in range(5):  # every task started reaches its permit or its queue
        await asyncio.sleep(0)


async def test_a_freed_permit_goes_to_the_tenant_holding_fewest_not_the_first_queued() -> None:
    """A pool's first come, first served put one search of bob behind a burst of eight of the
    hog's; here bob's is the next one served."""
    share, order, go = FairShare(2), [], asyncio.Event()
    tasks = [asyncio.create_task(_use(share, "hog", order, go)) for _ in range(8)]
    await _settle()
    tasks.append(asyncio.create_task(_use(share, "bob", order, go)))
    await _settle()
    assert order == ["hog", "hog"]
    go.set()
    await asyncio.gather(*tasks)
    assert order[:3] == ["hog", "hog", "bob"]
    assert share.free == 2 and not share.held and not share.waiting


async def test_tenants_that_wait_take_turns() -> None:
    share, order = FairShare(1), []
    gates = {t: asyncio.Event() for t in "abc"}

    async def use(tenant: str) -> None:
        async with share.turn(tenant):
            order.append(tenant)

    first = asyncio.create_task(_use(share, "a", order, gates["a"]))
    await _settle()
    tasks = [asyncio.create_task(use(t)) for t in "aaabbc"]
    await _settle()
    gates["a"].set()
    await asyncio.gather(first, *tasks)
    # after a's first: the least held wins, ties in the order they began to wait, and a tenant
    # just served goes behind the others
    assert order == ["a", "a", "b", "c", "a", "b", "a"]


async def test_a_cancelled_waiter_leaks_no_permit() -> None:
    share, order, go = FairShare(1), [], asyncio.Event()
    holder = asyncio.create_task(_use(share, "a", order, go))
    await _settle()
    gone = asyncio.create_task(_use(share, "b", order, go))
    await _settle()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    go.set()
    await holder
    assert share.free == 1 and not share.held and not share.waiting
    async with share.turn("c"):
        assert share.held == {"c": 1}


async def test_first_goes_ahead_of_its_own_tenant_only() -> None:
    share, order, go = FairShare(1), [], asyncio.Event()
    holder = asyncio.create_task(_use(share, "x", order, go))
    await _settle()

    async def use(tenant: str, label: str, first: bool = False) -> None:
        async with share.turn(tenant, first=first):
            order.append(label)

    tasks = [asyncio.create_task(use("a", "a1")), asyncio.create_task(use("b", "b1"))]
    await _settle()
    tasks.append(asyncio.create_task(use("a", "a-first", first=True)))
    await _settle()
    go.set()
    await asyncio.gather(holder, *tasks)
    assert order == ["x", "a-first", "b1", "a1"]

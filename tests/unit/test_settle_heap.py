"""`maas serve` settles its heap once up: the token encoding loaded, the objects alive then moved
out of the collector's way (a full collection walked all of them: ~100 ms latency spikes)."""

from __future__ import annotations

import gc

from maas.llm.tokens import encoding
from maas.runtime.serving import settle_heap


def test_settle_heap_loads_the_encoding_and_freezes_what_is_alive() -> None:
    encoding.cache_clear()
    before = gc.get_freeze_count()
    try:
        settle_heap("o200k_base")
        assert encoding.cache_info().currsize == 1  # loaded, the first request will not
        assert gc.get_freeze_count() > before  # the objects alive now are frozen
        frozen = gc.get_freeze_count()
        gc.collect()
        # A full collection leaves them alone. (A frozen object freed by its refcount leaves the
        # permanent generation: threads of earlier tests still ending may free a few.)
        assert frozen - frozen // 100 <= gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()

"""Stopping the service while its workers are being woken: a cancel that arrives together
with the wake-up must still stop them. (On Python 3.11 `asyncio.wait_for` can swallow such
a cancel; the delivery loop then ran on and `Service.stop` waited for it forever — the
intermittent hangs of the test suite. The workers wait with `asyncio.timeout` instead.)"""

from __future__ import annotations

import asyncio

from tests.support.hub import start_hub


async def test_stop_while_the_workers_are_woken_always_ends(tmp_path):
    for i in range(40):  # the race is hit in a few of these; every one must end
        (tmp_path / str(i)).mkdir()
        hub = await start_hub(tmp_path / str(i))
        try:
            await asyncio.sleep(0.01)  # the workers settle into their wait
            hub.service.delivery.wake.set()
            hub.service.processor.wake.set()
            async with asyncio.timeout(10):
                await hub.service.stop()
        finally:
            await hub.sink.stop()

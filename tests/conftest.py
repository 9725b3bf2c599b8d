from __future__ import annotations

import pytest_asyncio

from tests.support.hub import start_hub


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await start_hub(tmp_path)
    yield h
    await h.service.stop()
    await h.sink.stop()

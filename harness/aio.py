"""Run a coroutine to the end from synchronous test code, whatever loop this thread holds."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` in a thread of its own; return its result or raise its exception.

    Playwright's sync API keeps an event loop running in the thread that started it, for as long
    as the session's browsers live; `asyncio.run` refuses to start beside it. Under pytest-xdist a
    worker may run server tests after browser tests, so no test assumes its thread is free.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="aio") as pool:
        return pool.submit(asyncio.run, coro).result()

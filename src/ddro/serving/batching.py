"""Micro-batching: concurrent search requests gathered into one constrained beam search.

Requests wait in a bounded queue. One worker takes the first waiting request, then whatever else
arrives within `window_ms` (up to `max_queries` queries in all, and only requests that search with
the same beam width, which one beam search shares), and runs them as one `search` call in a
thread, so the event loop keeps accepting requests while the model works. A full queue refuses
at once (`QueueFull`), which the app answers with 429.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ddro.collections.base import Query


class QueueFull(Exception):
    """The batcher holds `max_waiting` requests already."""


@dataclass
class _Request:
    queries: list  # ddro Query objects
    hits: int
    beams: int
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """`await batcher.search(queries, hits, beams)` -> `{query_id: [(doc_id, score), ...]}`.

    `search(queries, k, num_beams)` is the retriever's (blocking) search; `observe(size)` is told
    each batch's query count (for metrics). `window_ms=0` with `max_queries=1` searches one request
    at a time, the baseline micro-batching is measured against."""

    def __init__(self, search, window_ms: float = 5.0, max_queries: int = 32, max_waiting: int = 256,
                 observe=lambda size: None):
        self._search, self.window, self.max_queries, self.max_waiting = search, window_ms / 1000, max_queries, max_waiting
        self._observe = observe
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._held: _Request | None = None  # taken from the queue but left for the next batch

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish every waiting request, then stop the worker."""
        if self._queue is not None:
            await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def search(self, queries: list, hits: int, beams: int) -> dict:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.search before start()")
        if self._queue.qsize() >= self.max_waiting:
            raise QueueFull
        request = _Request(queries, hits, beams, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def _next(self, timeout: float | None) -> _Request | None:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        if timeout is None:
            return await self._queue.get()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            batch, size = [first], len(first.queries)
            deadline = time.monotonic() + self.window
            while size < self.max_queries:
                left = deadline - time.monotonic()
                if left <= 0 and self._queue.empty():
                    break
                following = await self._next(max(left, 0))
                if following is None:
                    break
                if following.beams != first.beams or size + len(following.queries) > self.max_queries:
                    self._held = following  # it opens the next batch
                    break
                batch.append(following)
                size += len(following.queries)
            # Requests may reuse each other's query ids: each query is searched under a number of its own.
            queries = [Query(str(n), q.text) for n, q in enumerate(q for request in batch for q in request.queries)]
            self._observe(len(queries))
            try:
                run = await loop.run_in_executor(None, lambda: self._search(
                    queries, max(r.hits for r in batch), first.beams))
                n = 0
                for request in batch:
                    found = {q.query_id: run[str(n + i)][:request.hits] for i, q in enumerate(request.queries)}
                    n += len(request.queries)
                    if not request.future.done():
                        request.future.set_result(found)
            except Exception as exc:  # every request of the batch learns why
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

"""A small thread pool that carries DSPy's context into workers, reads its items lazily, and can stop early.

Context variables (DSPy's ``dspy.context`` overrides, the usage role) do not reach raw
threads, so each task runs in a copy of the submitting context. ``should_stop`` is
checked as results arrive: once it is true no further task starts, which is what the
exact early stop of a candidate's evaluation needs.

Items are drawn from their iterable only when a thread is free, so a generator of a
million seeds is never held in memory; finished tasks report through a queue, so one
completion costs the same with 4 or 512 tasks in flight (``concurrent.futures.wait``
walks every running future on each call).
"""

from __future__ import annotations

import contextvars
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_parallel"]

T = TypeVar("T")
R = TypeVar("R")


def run_parallel(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    num_threads: int,
    should_stop: Callable[[], bool] | None = None,
    on_result: Callable[[int, R], None] | None = None,
) -> Iterator[tuple[int, R]]:
    """Yield ``(index, function(item))`` as tasks finish, at most ``num_threads`` at a time.

    Items are started in order, each as soon as a thread is free. When ``should_stop()``
    becomes true, tasks not yet started are skipped; tasks already running finish and are
    still yielded. An exception in a task stops new starts and is raised after the running
    tasks end.
    """
    indexed = enumerate(items)
    if num_threads <= 1:
        for index, item in indexed:
            if should_stop is not None and should_stop():
                return
            result = function(item)
            if on_result is not None:
                on_result(index, result)
            yield index, result
        return

    finished: queue.SimpleQueue[tuple[int, Future]] = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="autoevol") as pool:
        in_flight = 0
        stopped = False
        error: BaseException | None = None

        def start_next() -> bool:
            nonlocal in_flight, stopped
            if stopped or (should_stop is not None and should_stop()):
                stopped = True
                return False
            try:
                index, item = next(indexed)
            except StopIteration:
                stopped = True
                return False
            future = pool.submit(contextvars.copy_context().run, function, item)
            future.add_done_callback(lambda done, index=index: finished.put((index, done)))
            in_flight += 1
            return True

        while in_flight < num_threads and start_next():
            pass
        while in_flight:
            index, future = finished.get()
            in_flight -= 1
            try:
                result = future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after running tasks end
                error = error or exc
                stopped = True
                continue
            if on_result is not None:
                on_result(index, result)
            yield index, result
            while in_flight < num_threads and error is None and start_next():
                pass
        if error is not None:
            raise error

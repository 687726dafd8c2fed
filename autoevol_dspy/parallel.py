"""A small thread pool that carries DSPy's context into workers and can stop early.

Context variables (DSPy's ``dspy.context`` overrides, the usage role) do not reach raw
threads, so each task runs in a copy of the submitting context. ``should_stop`` is
checked as results arrive: once it is true no further task starts, which is what the
exact early stop of a candidate's evaluation needs.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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

    Items are started in order. When ``should_stop()`` becomes true, tasks not yet started
    are skipped; tasks already running finish and are still yielded. An exception in a
    task stops new starts and is raised after the running tasks end.
    """
    pending_items = list(enumerate(items))
    if num_threads <= 1:
        for index, item in pending_items:
            if should_stop is not None and should_stop():
                return
            result = function(item)
            if on_result is not None:
                on_result(index, result)
            yield index, result
        return

    stop_flag = threading.Event()
    queue = iter(pending_items)
    with ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="autoevol") as pool:
        running: dict[Future, int] = {}

        def start_next() -> bool:
            if stop_flag.is_set() or (should_stop is not None and should_stop()):
                stop_flag.set()
                return False
            try:
                index, item = next(queue)
            except StopIteration:
                return False
            context = contextvars.copy_context()
            running[pool.submit(context.run, function, item)] = index
            return True

        for _ in range(num_threads):
            if not start_next():
                break
        error: BaseException | None = None
        while running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                try:
                    result = future.result()
                except BaseException as exc:  # noqa: BLE001 - re-raised below, after running tasks end
                    error = error or exc
                    stop_flag.set()
                    continue
                if on_result is not None:
                    on_result(index, result)
                yield index, result
            while len(running) < num_threads and error is None and start_next():
                pass
        if error is not None:
            raise error

"""What keeps an interactive engine warm between clicks: a bounded pool of open cases (their CT in memory, the
oldest evicted) and a bounded number of calls at once (the rest wait a while, then hear that the engine is busy).

Memory: a session holds the case's CT as read (int16 for a CT: 512 x 512 x 300 is 150 MiB). The pool holds at
most `max_sessions` cases and `max_bytes` bytes; opening one more evicts the least recently used.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class EngineBusy(Exception):
    """Every slot of the engine stayed taken for the whole wait."""

    def __init__(self, waited: float, busy: int) -> None:
        super().__init__(f"the interactive engine is busy ({busy} requests running); waited {waited:.1f} s")
        self.waited = waited
        self.busy = busy


class SessionPool(Generic[T]):
    """LRU of values (a case's CT and geometry) by key, bounded in count and bytes; thread-safe."""

    def __init__(self, *, max_sessions: int = 4, max_bytes: int = 1 << 30) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        self.evictions = 0

    def get(self, key: Hashable, load: Callable[[], tuple[T, int]]) -> T:
        """The value of key, loaded with load() -> (value, bytes) when not open (evicting the oldest)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value, size = load()  # outside the lock: a slow read does not hold other cases up
        with self._lock:
            self.loads += 1
            self._items[key] = (value, int(size))
            self._items.move_to_end(key)
            while len(self._items) > 1 and (len(self._items) > self.max_sessions or self.bytes() > self.max_bytes):
                self._items.popitem(last=False)
                self.evictions += 1
            return value

    def bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)


class Slots:
    """At most `size` calls at once; a call waits up to `wait` seconds for a slot, then EngineBusy."""

    def __init__(self, size: int = 1, *, wait: float = 10.0) -> None:
        self.size = size
        self.wait = wait
        self._semaphore = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    @contextmanager
    def take(self) -> Iterator[float]:
        """Hold a slot; yields the seconds waited for it."""
        started = time.perf_counter()
        with self._lock:
            self.waiting += 1
        try:
            got = self._semaphore.acquire(timeout=self.wait)
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            raise EngineBusy(time.perf_counter() - started, self.running)
        with self._lock:
            self.running += 1
        try:
            yield time.perf_counter() - started
        finally:
            with self._lock:
                self.running -= 1
            self._semaphore.release()

"""Batches made in a background thread, in order, a few ahead of the device."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B, 1, x, y, z), labels (B, C, ...), labelled (B, C)


def prefetch(make: Callable[[], Batch], count: int, *, depth: int = 2) -> Iterator[Batch]:
    """Yield count batches made by make() in a background thread, up to depth ahead of the consumer.

    One thread calls make() count times in order, so a seeded make() gives the same batches as a plain loop. An
    exception in make() is raised in the consumer; leaving the loop early stops the thread.
    """
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for _ in range(count):
                item = make()
                while not stop.is_set():
                    try:
                        slots.put(("batch", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            slots.put(("error", exc))

    thread = threading.Thread(target=work, name="atlas-batches", daemon=True)
    thread.start()
    try:
        for _ in range(count):
            kind, item = slots.get()
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=5)

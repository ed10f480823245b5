"""Ctrl-C during training: the first press asks the loop to stop at the next batch
boundary (the model and history stay consistent); a second press interrupts at once."""
from __future__ import annotations

import signal
import sys
import threading


class StopOnInterrupt:
    """Context manager; ``requested`` turns True on the first SIGINT. Outside the main
    thread (where signal handlers cannot be installed) it does nothing."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this batch (press Ctrl-C again to abort at once)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "StopOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

"""Eventfd doorbell: how a producer wakes a parked consumer.

A doorbell belongs to the consuming process; every producer feeding that process
rings the same eventfd. Eventfds cannot be opened by name, so the process that
creates the rings hands the descriptor to the others (fork inheritance, or
`subprocess.Popen(pass_fds=...)`) and they wrap it with `Doorbell.from_fd`.
"""

import os
import select


class Doorbell:
    """A non-blocking eventfd. `ring` adds one; `drain` resets it; `wait` blocks on it."""

    def __init__(self, fd: int, owned: bool) -> None:
        self.fd = fd
        self._owned = owned

    @classmethod
    def create(cls) -> "Doorbell":
        return cls(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), owned=True)

    @classmethod
    def from_fd(cls, fd: int) -> "Doorbell":
        """Wrap an inherited descriptor; it is closed by `close` like an owned one."""
        os.set_blocking(fd, False)
        return cls(fd, owned=True)

    def ring(self) -> None:
        os.eventfd_write(self.fd, 1)

    def drain(self) -> int:
        """Reset the counter; returns how many rings were pending."""
        try:
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0

    def wait(self, timeout_s: float | None) -> bool:
        """Block until rung or timed out; True when rung. Resets the counter."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        ms = None if timeout_s is None else max(0, int(timeout_s * 1000))
        ready = poller.poll(ms)
        return bool(ready) and self.drain() > 0

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

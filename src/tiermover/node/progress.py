"""Transfer accounting for one execution: counters, bandwidth and ETA in one place."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Progress:
    to_process_files: int = 0
    to_process_size: int = 0
    processed_files: int = 0
    processed_size: int = 0
    finalized_files: int = 0
    warnings: int = 0
    # (monotonic time, cumulative bytes moved) samples over the last few seconds
    _samples: deque = field(default_factory=lambda: deque(maxlen=64))
    _moved: int = 0

    WINDOW_SECONDS = 5.0

    def moved(self, count: int) -> None:
        self._moved += count
        now = time.monotonic()
        if not self._samples or now - self._samples[-1][0] >= 0.1:
            self._samples.append((now, self._moved))

    @property
    def bandwidth(self) -> int:
        """Bytes per second over the last few seconds."""
        now = time.monotonic()
        self._samples.append((now, self._moved))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.WINDOW_SECONDS:
            self._samples.popleft()
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return int((b1 - b0) / (t1 - t0)) if t1 - t0 > 0.05 else 0

    @property
    def estimation_time(self) -> int:
        """Seconds left at the current bandwidth (0 when unknown or done)."""
        remaining = max(self.to_process_size - self.processed_size, 0)
        speed = self.bandwidth
        return int(remaining / speed) if speed > 0 and remaining else 0

    @property
    def percent(self) -> int:
        if self.to_process_size:
            return min(100, int(100 * self.processed_size / self.to_process_size))
        if self.to_process_files:
            return min(100, int(100 * self.processed_files / self.to_process_files))
        return 0

    def counters(self) -> dict[str, int]:
        return {
            "to_process_files": self.to_process_files, "to_process_size": self.to_process_size,
            "processed_files": self.processed_files, "processed_size": self.processed_size,
            "finalized_files": self.finalized_files, "bandwidth": self.bandwidth,
            "estimation_time": self.estimation_time,
        }

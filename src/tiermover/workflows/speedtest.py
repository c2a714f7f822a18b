"""speedtest: write then read back a test payload on a storage; report both bandwidths.

The payload goes to a hidden name in the source (or destination) folder, is checked on
the way back, and is deleted whatever happens.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from tiermover.storage.base import StorageError, join
from tiermover.storage.checksums import new_hasher
from tiermover.workflows.base import ItemResult, RunContext, WorkItem, Workflow

PAYLOAD_BYTES = 32 * 1024 * 1024
BLOCK = 1024 * 1024


def rate(size: int, seconds: float) -> str:
    return f"{size / max(seconds, 1e-6) / 1e6:.1f} MB/s"


class SpeedtestWorkflow(Workflow):
    default_streams = 1

    def plan(self) -> Iterator[WorkItem]:
        for index, location in enumerate(self.execution.sources or self.execution.destinations):
            yield WorkItem(key=f"speedtest:{index}", size=2 * PAYLOAD_BYTES, payload=location)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        location = item.payload
        backend = location.backend
        top = backend.stat(location.path)
        folder = location.path if top is None or top.type == "folder" else (
            location.path.rpartition("/")[0])
        name = join(folder, f".tiermover-speedtest-{self.execution.execution_id or 'run'}")
        block = os.urandom(BLOCK)
        hasher = new_hasher("xxh128")
        try:
            started = time.monotonic()
            writer = backend.begin_write(name)
            try:
                for _ in range(PAYLOAD_BYTES // BLOCK):
                    context.checkpoint()
                    writer.write(block)
                    hasher.update(block)
                    context.add_bytes(BLOCK)
                writer.commit(replace=True)
            except BaseException:
                writer.abort()
                raise
            write_seconds = time.monotonic() - started
            started = time.monotonic()
            check = new_hasher("xxh128")
            with backend.open_read(name) as reader:
                while chunk := reader.read(BLOCK):
                    context.checkpoint()
                    check.update(chunk)
                    context.add_bytes(len(chunk))
            read_seconds = time.monotonic() - started
        finally:
            backend.remove(name)
        if check.hexdigest() != hasher.hexdigest():
            raise StorageError(f"{location.namespace_path}: the test payload read back differs "
                               "from what was written")
        message = (f"speedtest {location.namespace_path}: write {rate(PAYLOAD_BYTES, write_seconds)}, "
                   f"read {rate(PAYLOAD_BYTES, read_seconds)} ({PAYLOAD_BYTES // 2**20} MiB)")
        return ItemResult("done", size=item.size, message=message)

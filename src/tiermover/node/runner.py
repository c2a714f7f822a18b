"""Runs one workflow for one execution: the framework around plan(), run() and finish().

It skips work items finished in an earlier attempt (the checkpoint), runs the others on
up to `parallel_processing` concurrent streams, checks for pause and stop between items
and between chunks, keeps the counters, and reports every item and every log line to a
Reporter (the node client batches them to the server).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from tiermover.node.progress import Progress
from tiermover.storage.base import StorageError
from tiermover.workflows.base import ControlInterrupt, ItemResult, WorkItem, Workflow


class Reporter(Protocol):
    def phase(self, status: str, progress: Progress) -> None: ...
    def item_finished(self, item: WorkItem, result: ItemResult, progress: Progress) -> None: ...
    def log(self, level: str, message: str, progress: Progress) -> None: ...
    def tick(self, progress: Progress) -> None:
        """Called often; sends what is due and refreshes the pending command."""

    def pending_command(self) -> str | None:
        """'pause' or 'stop' when the server asked for it, else None."""


@dataclass
class Outcome:
    status: str  # done | finished_with_warnings | error | paused | stopped | abandoned
    message: str | None = None


class _Shared:
    """What every stream of one execution shares; the lock keeps the reporter and the
    counters consistent when several items run at once."""

    def __init__(self, reporter: Reporter, progress: Progress, bandwidth_limit: int | None):
        self.reporter = reporter
        self.progress = progress
        self.bandwidth_limit = bandwidth_limit
        self.lock = threading.Lock()
        self._throttle_start = time.monotonic()
        self._throttle_bytes = 0

    def checkpoint(self) -> None:
        with self.lock:
            self.reporter.tick(self.progress)
            command = self.reporter.pending_command()
        if command in ("pause", "stop", "abandon"):
            raise ControlInterrupt(command)

    def moved(self, count: int) -> None:
        with self.lock:
            self.progress.processed_size += count
            self.progress.moved(count)
            if not self.bandwidth_limit:
                return
            # Sleep just long enough to keep the node under its bandwidth limit.
            self._throttle_bytes += count
            ahead = (self._throttle_bytes / self.bandwidth_limit
                     - (time.monotonic() - self._throttle_start))
        if ahead > 0:
            time.sleep(ahead)

    def log(self, level: str, message: str) -> None:
        with self.lock:
            self.reporter.log(level, message, self.progress)


class _ItemContext:
    """The RunContext of one item: it also remembers the bytes this item moved."""

    def __init__(self, shared: _Shared):
        self.shared = shared
        self.moved = 0

    def checkpoint(self) -> None:
        self.shared.checkpoint()

    def add_bytes(self, count: int) -> None:
        self.moved += count
        self.shared.moved(count)

    def log(self, level: str, message: str) -> None:
        self.shared.log(level, message)


def _run_item(workflow: Workflow, item: WorkItem, context: _ItemContext) -> ItemResult:
    try:
        return workflow.run(item, context)
    except (StorageError, OSError) as error:
        return ItemResult("failed", message=f"{workflow.describe(item)}: {error}", warning=True)


def parallel_streams(workflow: Workflow) -> int:
    try:
        return max(1, int(workflow.execution.options.get("parallel_processing") or
                          workflow.default_streams))
    except ValueError:
        return workflow.default_streams


def run_workflow(workflow: Workflow, finished_keys: set[str], reporter: Reporter,
                 progress: Progress | None = None, bandwidth_limit: int | None = None) -> Outcome:
    progress = progress or Progress()
    shared = _Shared(reporter, progress, bandwidth_limit)
    try:
        with shared.lock:
            reporter.phase("calculating", progress)
        # First pass counts, second pass works: the plan is never held in memory.
        for item in workflow.plan():
            progress.to_process_files += 1
            progress.to_process_size += item.size
            if item.key in finished_keys:
                progress.processed_files += 1
                progress.processed_size += item.size
                progress.finalized_files += 1
            shared.checkpoint()
        with shared.lock:
            reporter.phase("in_progress", progress)
        if finished_keys:
            shared.log("info", f"resuming: {len(finished_keys)} items already done are kept")
        pending = (item for item in workflow.plan() if item.key not in finished_keys)
        streams = parallel_streams(workflow)
        if streams == 1:
            for item in pending:
                shared.checkpoint()
                _finish_item(shared, item, _run_one(workflow, item, shared))
        else:
            _run_parallel(workflow, pending, shared, streams)
        changes = workflow.finish(_ItemContext(shared))
        if changes:
            with shared.lock:
                # Not a planned item: reported for its catalog changes only.
                reporter.item_finished(WorkItem(key="finish"), ItemResult("done", changes=changes),
                                       progress)
    except ControlInterrupt as interrupt:
        if interrupt.command == "abandon":
            return Outcome("abandoned")
        shared.log("info", f"{'paused' if interrupt.command == 'pause' else 'stopped'} after "
                           f"{progress.processed_files} of {progress.to_process_files} items")
        return Outcome("paused" if interrupt.command == "pause" else "stopped")
    except (StorageError, OSError) as error:
        shared.log("error", str(error))
        return Outcome("error", str(error))
    if progress.warnings:
        return Outcome("finished_with_warnings")
    return Outcome("done")


def _run_one(workflow: Workflow, item: WorkItem, shared: _Shared) -> tuple[ItemResult, int]:
    context = _ItemContext(shared)
    return _run_item(workflow, item, context), context.moved


def _finish_item(shared: _Shared, item: WorkItem, run: tuple[ItemResult, int]) -> None:
    result, moved = run
    with shared.lock:
        progress = shared.progress
        # Whatever moved for this item, it counts as its planned size once finished.
        progress.processed_size += item.size - moved
        progress.processed_files += 1
        progress.finalized_files += 1
        if result.warning:
            progress.warnings += 1
        shared.reporter.item_finished(item, result, progress)


def _run_parallel(workflow: Workflow, pending, shared: _Shared, streams: int) -> None:
    """Up to `streams` items at once; a few more are planned ahead so no stream waits.
    A pause or stop raised in one stream lets the others reach their own checkpoint."""
    interrupt: ControlInterrupt | None = None
    in_flight: dict[Future, WorkItem] = {}
    with ThreadPoolExecutor(streams, thread_name_prefix="stream") as pool:
        for item in pending:
            try:
                shared.checkpoint()
            except ControlInterrupt as raised:
                interrupt = raised
                break
            in_flight[pool.submit(_run_one, workflow, item, shared)] = item
            if len(in_flight) >= streams * 2:
                interrupt = _collect(in_flight, shared, FIRST_COMPLETED) or interrupt
                if interrupt:
                    break
        while in_flight:
            interrupt = _collect(in_flight, shared, FIRST_COMPLETED) or interrupt
    if interrupt:
        raise interrupt


def _collect(in_flight: dict[Future, WorkItem], shared: _Shared,
             how: str) -> ControlInterrupt | None:
    done, _ = wait(in_flight, return_when=how)
    interrupt = None
    for future in done:
        item = in_flight.pop(future)
        try:
            run = future.result()
        except ControlInterrupt as raised:
            interrupt = raised
            continue
        _finish_item(shared, item, run)
    return interrupt

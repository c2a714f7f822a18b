"""Runs one workflow for one execution: the framework around plan() and run().

It skips work items finished in an earlier attempt (the checkpoint), checks for pause
and stop between items and between chunks, keeps the counters, and reports every item
and every log line to a Reporter (the node client batches them to the server).
"""

from __future__ import annotations

import time
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


class _Context:
    def __init__(self, reporter: Reporter, progress: Progress, bandwidth_limit: int | None):
        self.reporter = reporter
        self.progress = progress
        self.bandwidth_limit = bandwidth_limit
        self._throttle_start = time.monotonic()
        self._throttle_bytes = 0

    def checkpoint(self) -> None:
        self.reporter.tick(self.progress)
        command = self.reporter.pending_command()
        if command in ("pause", "stop", "abandon"):
            raise ControlInterrupt(command)

    def add_bytes(self, count: int) -> None:
        self.progress.processed_size += count
        self.progress.moved(count)
        if self.bandwidth_limit:
            # Sleep just long enough to stay under the node's bandwidth limit.
            self._throttle_bytes += count
            ahead = self._throttle_bytes / self.bandwidth_limit - (time.monotonic() - self._throttle_start)
            if ahead > 0:
                time.sleep(ahead)

    def log(self, level: str, message: str) -> None:
        self.reporter.log(level, message, self.progress)


def run_workflow(workflow: Workflow, finished_keys: set[str], reporter: Reporter,
                 progress: Progress | None = None, bandwidth_limit: int | None = None) -> Outcome:
    progress = progress or Progress()
    context = _Context(reporter, progress, bandwidth_limit)
    try:
        reporter.phase("calculating", progress)
        # First pass counts, second pass works: the plan is never held in memory.
        for item in workflow.plan():
            progress.to_process_files += 1
            progress.to_process_size += item.size
            if item.key in finished_keys:
                progress.processed_files += 1
                progress.processed_size += item.size
                progress.finalized_files += 1
            context.checkpoint()
        reporter.phase("in_progress", progress)
        if finished_keys:
            context.log("info", f"resuming: {len(finished_keys)} items already done are kept")
        for item in workflow.plan():
            if item.key in finished_keys:
                continue
            context.checkpoint()
            size_before = progress.processed_size
            try:
                result = workflow.run(item, context)
            except (StorageError, OSError) as error:
                result = ItemResult("failed", message=f"{_describe(item)}: {error}", warning=True)
            # Whatever moved for this item, it counts as its planned size once finished.
            progress.processed_size = size_before + item.size
            progress.processed_files += 1
            progress.finalized_files += 1
            if result.warning:
                progress.warnings += 1
            reporter.item_finished(item, result, progress)
    except ControlInterrupt as interrupt:
        if interrupt.command == "abandon":
            return Outcome("abandoned")
        context.log("info", f"{'paused' if interrupt.command == 'pause' else 'stopped'} "
                            f"after {progress.processed_files} of {progress.to_process_files} items")
        return Outcome("paused" if interrupt.command == "pause" else "stopped")
    except (StorageError, OSError) as error:
        context.log("error", str(error))
        return Outcome("error", str(error))
    status = "finished_with_warnings" if progress.warnings else "done"
    return Outcome(status)


def _describe(item: WorkItem) -> str:
    return item.key.split(":", 1)[-1] or "/"

"""Runs one workflow for one execution: the framework around plan(), run() and finish().

It skips work items finished in an earlier attempt (the checkpoint), runs the others on
up to `parallel_processing` concurrent streams (unset: see _Lanes), checks for pause and
stop between items and between chunks, keeps the counters, and reports every item and
every log line to a Reporter (the node client batches them to the server).

Reports leave from a thread of their own (the report pump): a stream never waits while a
batch travels to the server and the server applies it to the catalog, so the node's work
and the server's overlap.
"""

from __future__ import annotations

import resource
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from tiermover.node.progress import Progress
from tiermover.storage.base import StorageError
from tiermover.workflows.base import (
    ControlInterrupt, ItemResult, PendingResult, RunAgain, WorkItem, Workflow,
)


# Entries (files and folders) of a plan kept in memory between its two passes at most:
# about 30 MiB for a copy's items (some 630 bytes each). Above it the plan is walked
# again; below it a copy of 20,000 small files took 15-19% less time than walking twice
# (the second walk runs on the streams' side, under their lock, where it holds them up).
PLAN_KEPT_ENTRIES = 50_000
# A stream settles its pending results (small files waiting to take their names, see
# PendingResult) once this many wait, once they hold this many bytes, or once the oldest
# waited this long, and before an item larger than GROUP_BYTES: a group makes its files
# durable with one wait for the disk (the fewer the waits, the less a stream waits: a
# copy of 20,000 files of 4 KiB took a third less time in groups of 256 than of 32), and
# stays small enough that its items are reported soon. Its files stay open until then:
# under a low limit on open files, groups are smaller (files_per_group).
GROUP_FILES = 256
GROUP_BYTES = 16 * 1024 * 1024
GROUP_SECONDS = 0.5


class Reporter(Protocol):
    def phase(self, status: str, progress: Progress) -> None: ...
    def item_finished(self, item: WorkItem, result: ItemResult, progress: Progress) -> None: ...
    def log(self, level: str, message: str, progress: Progress) -> None: ...
    def tick(self, progress: Progress) -> None:
        """Called often; sends what is due and refreshes the pending command."""

    def send(self, progress: Progress) -> None:
        """Sends what it holds now."""

    def pending_command(self) -> str | None:
        """'pause' or 'stop' when the server asked for it, else None."""


@dataclass
class Outcome:
    status: str  # done | finished_with_warnings | error | paused | stopped | abandoned
    message: str | None = None


class _ReportPump:
    """Hands finished items and log lines to the reporter, in the order they came, from
    its own thread, and ticks the reporter between them (periodic reports, commands).

    The queue is bounded by the catalog changes it holds, and so is what the reporter
    holds between two sends: a node faster than its server waits for it instead of
    piling results up in memory (a scan's item carries hundreds of entries). Every call
    into the reporter holds `lock`.
    """

    TICK_SECONDS = 0.1
    MAX_QUEUED_CHANGES = 5000
    # The pump wakes every tick, or sooner once this much waits: waking it for every
    # item would cost a thread switch per small file.
    WAKE_AT_CHANGES = 1000

    def __init__(self, reporter: Reporter, progress: Progress, counters: threading.Lock):
        self.reporter = reporter
        self.progress = progress
        self.counters = counters
        self.lock = threading.Lock()
        self._ready = threading.Condition()
        self._events: deque[tuple] = deque()
        self._queued = 0
        self._unsent = 0  # changes handed to the reporter since the pump last had it send
        self._closing = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="report-pump", daemon=True)
        self._thread.start()

    def put(self, event: tuple, weight: int = 1) -> None:
        with self._ready:
            while (self._queued >= self.MAX_QUEUED_CHANGES and self._failure is None
                   and not self._closing):
                self._ready.wait()
            if self._failure is not None:
                raise RuntimeError("reporting failed") from self._failure
            self._events.append(event)
            self._queued += weight
            if self._queued >= self.WAKE_AT_CHANGES:
                self._ready.notify_all()

    def close(self) -> None:
        """Delivers what is queued, then stops the thread."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        self._thread.join()
        if self._failure is not None:
            raise RuntimeError("reporting failed") from self._failure

    def _pump(self) -> None:
        try:
            while True:
                with self._ready:
                    if not self._closing and self._queued < self.WAKE_AT_CHANGES:
                        self._ready.wait(self.TICK_SECONDS)
                    events = list(self._events)
                    self._events.clear()
                    self._queued = 0
                    self._ready.notify_all()
                    closing = self._closing
                with self.lock:
                    for event in events:
                        self._unsent += self._deliver(*event)
                        if self._unsent >= self.MAX_QUEUED_CHANGES:
                            self.reporter.send(self.progress)
                            self._unsent = 0
                    self.reporter.tick(self.progress)
                if closing and not events:
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the streams and the runner
            with self._ready:
                self._failure = error
                self._ready.notify_all()

    def _deliver(self, kind: str, *args) -> int:
        """Hands one event to the reporter; returns the catalog changes it carried."""
        if kind == "log":
            self.reporter.log(*args, self.progress)
            return 0
        item, result, moved, planned = args
        if planned:
            with self.counters:
                progress = self.progress
                # Whatever moved for this item, it counts as its planned size once finished.
                progress.processed_size += item.size - moved
                progress.processed_files += 1
                progress.finalized_files += 1
                if result.warning:
                    progress.warnings += 1
        self.reporter.item_finished(item, result, self.progress)
        return result.catalog_change_count


class _Shared:
    """What every stream of one execution shares: the counters (under `counters`), the
    bandwidth limit, and the report pump."""

    def __init__(self, reporter: Reporter, progress: Progress, bandwidth_limit: int | None):
        self.reporter = reporter
        self.progress = progress
        self.bandwidth_limit = bandwidth_limit
        self.counters = threading.Lock()
        self.pump = _ReportPump(reporter, progress, self.counters)
        self._throttle_start = time.monotonic()
        self._throttle_bytes = 0
        # Items finished (this attempt or an earlier one), counting those still on their
        # way to the reporter.
        self.settled = 0

    def checkpoint(self) -> None:
        # The pump and the node's heartbeats keep the pending command fresh: checking it
        # costs an attribute read, so steps may call this between every chunk.
        command = self.reporter.pending_command()
        if command in ("pause", "stop", "abandon"):
            raise ControlInterrupt(command)

    def moved(self, count: int) -> None:
        with self.counters:
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
        self.pump.put(("log", level, message))

    def finished(self, item: WorkItem, result: ItemResult, moved: int,
                 planned: bool = True) -> None:
        """Called by the stream that ran the item."""
        with self.counters:
            self.settled += planned
        self.pump.put(("item", item, result, moved, planned), max(1, result.catalog_change_count))

    def phase(self, status: str) -> None:
        with self.pump.lock:
            self.reporter.phase(status, self.progress)


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


def _run_item(workflow: Workflow, item: WorkItem,
              context: _ItemContext) -> ItemResult | PendingResult:
    try:
        return workflow.run(item, context)
    except (StorageError, OSError) as error:
        return _failed(workflow, item, error)


def _failed(workflow: Workflow, item: WorkItem, error: Exception) -> ItemResult:
    return ItemResult("failed", message=f"{workflow.describe(item)}: {error}", warning=True)


class _Group:
    """One stream's items whose step returned a PendingResult, settled together."""

    def __init__(self, workflow: Workflow, shared: _Shared, most_files: int = GROUP_FILES):
        self.workflow = workflow
        self.shared = shared
        self.most_files = most_files
        self.items: list[tuple[WorkItem, PendingResult, int]] = []
        self.size = 0
        self.started = 0.0
        self.ran_again: set[str] = set()  # keys of items run a second time (RunAgain)

    def add(self, item: WorkItem, pending: PendingResult, moved: int) -> None:
        if not self.items:
            self.started = time.monotonic()
        self.items.append((item, pending, moved))
        self.size += pending.size
        if (len(self.items) >= self.most_files or self.size >= GROUP_BYTES
                or time.monotonic() - self.started >= GROUP_SECONDS):
            self.settle()

    def settle(self) -> None:
        """The items end (each done or failed on its own) and go to the report pump."""
        while self.items:  # an item run again may wait in the group once more
            self._settle_group()

    def _settle_group(self) -> None:
        items, self.items, self.size = self.items, [], 0
        results = self.workflow.settle([pending for _, pending, _ in items])
        again = []
        for (item, _, moved), result in zip(items, results, strict=True):
            if isinstance(result, RunAgain) and item.key not in self.ran_again:
                again.append((item, moved))
                continue
            if isinstance(result, Exception):
                if not isinstance(result, (StorageError, OSError)):
                    raise result
                result = _failed(self.workflow, item, result)
            self.shared.finished(item, result, moved)
        # Once the others are reported: a pause met meanwhile leaves only these undone.
        for item, moved in again:
            self.ran_again.add(item.key)
            result, more = _run_one(self.workflow, item, self.shared)
            if isinstance(result, PendingResult):
                self.add(item, result, moved + more)
            else:
                self.shared.finished(item, result, moved + more)

    def discard(self) -> None:
        items, self.items, self.size = self.items, [], 0
        if items:
            self.workflow.discard([pending for _, pending, _ in items])


def parallel_streams(workflow: Workflow) -> tuple[int, bool]:
    """How many streams run the plan's items, and whether items that keep the CPU busy
    (Workflow.keeps_cpu_busy) run on a stream of their own besides: when the task leaves
    parallel_processing unset. Set, it is the number of streams, every one taking any
    item."""
    try:
        chosen = int(workflow.execution.options.get("parallel_processing") or 0)
    except ValueError:
        chosen = 0
    if chosen > 0:
        return chosen, False
    return workflow.default_streams, workflow.may_keep_cpu_busy()


def files_per_group(streams: int) -> int:
    """GROUP_FILES, or fewer where the limit on open files would not let every stream
    hold that many (a file waiting in its group stays open: the group's flush needs it),
    leaving most of the limit to everything else the node opens."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return GROUP_FILES // 8
    if soft == resource.RLIM_INFINITY:
        return GROUP_FILES
    return max(8, min(GROUP_FILES, soft // 4 // streams))


class _Lanes:
    """The plan's items dealt to the streams, in plan order within each lane: items the
    workflow says keep the CPU busy go to a single stream (the CPU lane), the others to
    the remaining streams (the waiting lane).

    Python runs one thread at a time, and a thread lets go at every system call: several
    streams copying small files between local disks spend more CPU handing the
    interpreter to one another than they gain (a copy of 20,000 files of 4 KiB: a third
    less CPU on one stream than on four). Large files, object storage and network shares
    wait for the disk or the network instead: there several streams overlap the waits.

    A stream that meets an item of the other lane leaves it for that lane's streams, up
    to HELD_AT_MOST items per lane (then it waits until half are taken), so memory stays
    bounded whatever the plan.
    """

    HELD_AT_MOST = 1000

    def __init__(self, workflow: Workflow, pending, split: bool):
        self.workflow = workflow
        self.pending = pending
        self.split = split
        self.lock = threading.Lock()
        self.held: dict[bool, deque[WorkItem]] = {True: deque(), False: deque()}
        # Streams of a lane wait on its condition while the other lane's queue is full:
        # for room in it, or for an item of their own.
        self.ready = {lane: threading.Condition(self.lock) for lane in (True, False)}
        self.exhausted = False
        self.stopping = False

    def take(self, cpu_lane: bool) -> WorkItem | None:
        """The next item for a stream of this lane; None once there is none left (or the
        streams are stopping)."""
        with self.lock:
            if not self.split:
                return None if self.stopping else next(self.pending, None)
            mine, other = self.held[cpu_lane], self.held[not cpu_lane]
            while not self.stopping:
                if mine:
                    item = mine.popleft()
                    if len(mine) == self.HELD_AT_MOST // 2:
                        self.ready[not cpu_lane].notify_all()  # room again
                    return item
                if self.exhausted:
                    return None
                if len(other) >= self.HELD_AT_MOST:
                    self.ready[cpu_lane].wait(0.5)
                    continue
                # The plan is a generator (a walk): one stream advances it at a time.
                item = next(self.pending, None)
                if item is None:
                    self.exhausted = True
                    for condition in self.ready.values():
                        condition.notify_all()
                    return None
                if self.workflow.keeps_cpu_busy(item) == cpu_lane:
                    return item
                other.append(item)
                self.ready[not cpu_lane].notify()
            return None

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for condition in self.ready.values():
                condition.notify_all()


def run_workflow(workflow: Workflow, finished_keys: set[str], reporter: Reporter,
                 progress: Progress | None = None, bandwidth_limit: int | None = None) -> Outcome:
    progress = progress or Progress()
    shared = _Shared(reporter, progress, bandwidth_limit)
    try:
        outcome = _run_all(workflow, finished_keys, shared)
    finally:
        shared.pump.close()
    if outcome is None:
        return Outcome("finished_with_warnings" if progress.warnings else "done")
    return outcome


def _run_all(workflow: Workflow, finished_keys: set[str], shared: _Shared) -> Outcome | None:
    """None when every item ran (the counters then say whether with warnings)."""
    progress = shared.progress
    try:
        shared.phase("calculating")
        # First pass counts, second pass works. A small plan is kept from the first pass
        # (no second walk: on object storage a walk costs a request per object); a large
        # one is walked again, so memory stays bounded whatever the tree.
        kept: deque[WorkItem] | None = deque()
        entries = 0
        # (A workflow that does not count first is counted as its items run, below.)
        for item in workflow.plan() if workflow.counts_first else ():
            _count(item, finished_keys, shared)
            if kept is not None:
                entries += _entries(item)
                if entries > PLAN_KEPT_ENTRIES:
                    kept = None
                elif item.key not in finished_keys:
                    kept.append(item)
            shared.checkpoint()
        shared.phase("in_progress")
        if finished_keys:
            shared.log("info", f"resuming: {len(finished_keys)} items already done are kept")
        if not workflow.counts_first:
            pending = _counted_as_planned(workflow, finished_keys, shared)
        elif kept is not None:
            pending = _taken(kept)
        else:
            pending = (item for item in workflow.plan() if item.key not in finished_keys)
        _run_streams(workflow, pending, shared, *parallel_streams(workflow))
        changes = workflow.finish(_ItemContext(shared))
        if changes:
            # Not a planned item: reported for its catalog changes only.
            shared.finished(WorkItem(key="finish"), ItemResult("done", changes=changes), 0,
                            planned=False)
    except ControlInterrupt as interrupt:
        if interrupt.command == "abandon":
            return Outcome("abandoned")
        shared.log("info", f"{'paused' if interrupt.command == 'pause' else 'stopped'} after "
                           f"{shared.settled} of {progress.to_process_files} items")
        return Outcome("paused" if interrupt.command == "pause" else "stopped")
    except (StorageError, OSError) as error:
        shared.log("error", str(error))
        return Outcome("error", str(error))
    return None


def _count(item: WorkItem, finished_keys: set[str], shared: _Shared) -> bool:
    """Counts a planned item in the totals (and as done when an earlier attempt finished
    it: True)."""
    progress = shared.progress
    with shared.counters:
        progress.to_process_files += 1
        progress.to_process_size += item.size
        if item.key not in finished_keys:
            return False
        shared.settled += 1
        progress.processed_files += 1
        progress.processed_size += item.size
        progress.finalized_files += 1
        return True


def _counted_as_planned(workflow: Workflow, finished_keys: set[str], shared: _Shared):
    """The plan in one walk: each item counted in the totals as it comes, and yielded
    unless an earlier attempt finished it."""
    for item in workflow.plan():
        if _count(item, finished_keys, shared):
            # A resumed plan may skip long runs of finished items: pause and stop still
            # answer meanwhile.
            shared.checkpoint()
            continue
        yield item


def _taken(items: deque[WorkItem]):
    """The items in order, each let go of as it is taken."""
    while items:
        yield items.popleft()


def _entries(item: WorkItem) -> int:
    """How many files and folders an item stands for (a scan's item is a chunk of them)."""
    return len(item.payload) if isinstance(item.payload, (list, tuple)) else 1


def _run_one(workflow: Workflow, item: WorkItem,
             shared: _Shared) -> tuple[ItemResult | PendingResult, int]:
    context = _ItemContext(shared)
    return _run_item(workflow, item, context), context.moved


def _run_streams(workflow: Workflow, pending, shared: _Shared, streams: int,
                 cpu_lane: bool = False) -> None:
    """Up to `streams` items at once (plus one on the CPU lane, see _Lanes): each stream
    takes the next item of the plan, runs it and hands the result to the report pump
    itself (no thread in between); one stream runs in the calling thread. A pause or
    stop raised in one stream lets the others reach their own checkpoint; each stream
    settles what it holds pending first (its files are whole: they only wait to take
    their names), except when the execution was abandoned (another node has it now)."""
    lanes = _Lanes(workflow, pending, split=cpu_lane)
    guard = threading.Lock()
    interrupts: list[ControlInterrupt] = []
    failures: list[BaseException] = []

    kinds = [False] * streams + [True] * cpu_lane
    group_files = files_per_group(len(kinds))

    def stream(on_cpu_lane: bool) -> None:
        group = _Group(workflow, shared, group_files)
        try:
            while (item := lanes.take(on_cpu_lane)) is not None:
                if item.size > GROUP_BYTES:
                    group.settle()  # not left waiting behind a long item
                shared.checkpoint()
                result, moved = _run_one(workflow, item, shared)
                if isinstance(result, PendingResult):
                    group.add(item, result, moved)
                else:
                    shared.finished(item, result, moved)
            group.settle()
        except ControlInterrupt as raised:
            lanes.stop()
            try:
                if raised.command == "abandon":
                    group.discard()
                else:
                    group.settle()
            except BaseException as error:  # noqa: BLE001 - raised again by the runner
                with guard:
                    failures.append(error)
                return
            with guard:
                interrupts.append(raised)
        except BaseException as error:  # noqa: BLE001 - raised again by the runner
            lanes.stop()
            group.discard()
            with guard:
                failures.append(error)

    if len(kinds) == 1:
        stream(kinds[0])
    else:
        threads = [threading.Thread(target=stream, args=(kind,), name=f"stream-{index}",
                                    daemon=True)
                   for index, kind in enumerate(kinds)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    if interrupts:
        raise interrupts[0]

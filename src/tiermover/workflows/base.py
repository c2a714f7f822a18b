"""What a workflow is, and what the framework gives it while it runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol

from tiermover.storage.base import Backend, StorageError


class ControlInterrupt(Exception):
    """Raised at a checkpoint when the execution must pause or stop now."""

    def __init__(self, command: str, reason: str = ""):
        super().__init__(command)
        self.command = command  # "pause" | "stop"
        self.reason = reason


class RunAgain(StorageError):
    """What `Workflow.settle` gives for an item that cannot end as it stands, everything
    of it undone (a file another program wrote at its name meanwhile): the runner runs
    it once more from the start. A second time, the message is the item's failure."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One unit of work. `key` is stable across runs: a finished key is never redone."""

    key: str
    size: int = 0
    payload: Any = None


@dataclass
class CatalogChange:
    """What a step did to stored data, for the server to apply to the catalog.

    op:
    - "written": `path` now holds data (attributes in `entry`); with `copy_of`, it is a
      copy of that namespace path, with `checksum` computed in the same pass.
    - "seen": `path` exists with `entry` (a scan); refreshes or adds its catalog entry.
      Scans report these as rows of ItemResult.seen instead, one tuple per entry.
    - "removed": `path` is gone; `keep_offline` keeps its entry (and copies) as offline,
      as a container file whose data now lives only in its copies.
    - "verified": the copy at `path` was re-read; `ok` says whether its checksum matched.
    - "held": an incremental backup found `path` unchanged: its set holds the version the
      previous set holds.
    - "swept": a scan walked all of `path`: catalogued entries under it that the scan did
      not see are gone (kept offline when they have copies).
    """

    op: str
    path: str  # namespace path: /<storage>/<inside>
    entry: dict | None = None  # type, size, mode, uid, gid, mtime, atime, ctime
    checksum: str | None = None
    algorithm: str | None = None
    copy_of: str | None = None
    source_entry: dict | None = None  # the attributes of `copy_of` when it was read
    keep_offline: bool = False
    ok: bool = True

    def as_dict(self) -> dict:
        # (`is`, not `in (None, False)`: no equality test per field of every change.)
        return {key: value for key, value in self.__dict__.items()
                if (value is not None and value is not False) or key == "ok"}


# The fields of one entry a scan saw, as ItemResult.seen holds them: the namespace path,
# then CatalogChange.entry's values.
SEEN_COLUMNS = ("path", "type", "size", "mode", "uid", "gid", "mtime", "atime", "ctime")
SEEN_COLUMNS_HASHED = (*SEEN_COLUMNS, "checksum", "algorithm")


@dataclass
class ItemResult:
    outcome: str  # done | renamed | skipped | failed | missing | mismatch | removed
    size: int = 0
    message: str | None = None
    warning: bool = False  # counts towards finished_with_warnings
    checksum: str | None = None
    destination: str | None = None  # namespace path written, for the catalog
    entry: dict | None = None  # its attributes (size, mode, dates...) for the catalog
    changes: list[CatalogChange] = field(default_factory=list)
    # What a scan saw: changes of op "seen" as rows of `seen_columns` (a scan reports
    # every entry of a tree; a tuple costs a fraction of a change and its dict, on the
    # node, in the report's JSON and on the server).
    seen: list[tuple] = field(default_factory=list)
    seen_columns: tuple[str, ...] = SEEN_COLUMNS

    @property
    def catalog_change_count(self) -> int:
        return len(self.changes) + len(self.seen)


@dataclass
class PendingResult:
    """What a step returns when its item ends together with others: a small file written
    under its temporary name, which takes its final name with the group (see
    Backend.commit_group: one wait for the disk for many files).

    The runner keeps a stream's pending results and hands them to `Workflow.settle` as
    one group (once it is large or old enough, before a long item, at the end, and
    before a pause or stop): the items finish, and are reported, only then.
    """

    state: Any  # the workflow's own
    size: int = 0  # bytes waiting in it


@dataclass(frozen=True)
class StorageLocation:
    """A task source or destination as a node sees it: a backend and a path inside it."""

    namespace_path: str  # /<storage>/<path>
    storage_name: str
    backend: Backend
    path: str  # inside the backend
    storage_key: str = ""  # "<kind>:<id>", e.g. "nas_share:3"
    # A tape destination: the cartridges to fill, in order, and the scratch ones it may
    # take (see tiermover.service.storage.tape_spec.tape_destination).
    tapes: dict | None = None


class RunContext(Protocol):
    """Given to each step by the framework."""

    def checkpoint(self) -> None:
        """Raise ControlInterrupt if a pause or stop is pending; call between chunks."""

    def add_bytes(self, count: int) -> None:
        """Report bytes moved inside the current item (progress and bandwidth)."""

    def log(self, level: str, message: str) -> None: ...


@dataclass
class ExecutionPlan:
    """What a node needs to run an execution."""

    action: str
    sources: list[StorageLocation]
    destinations: list[StorageLocation]
    options: dict[str, str] = field(default_factory=dict)
    conflict_resolution: str = "rename"
    # Bytes read per step: smaller chunks make pause and stop answer sooner.
    chunk_size: int = 1024 * 1024
    # A later attempt of the same execution (after a pause, a lost node, a restart): its
    # earlier attempts may have finished items whose report never reached the server.
    resumed: bool = False
    execution_id: str | None = None
    task_id: int | None = None
    # Catalog records by kind, streamed from the server (see tiermover.node.references).
    catalog: Callable[[str], Iterator[dict]] | None = None
    # Filter expressions (task callbacks of type filter): a file is selected if all match.
    filters: list[str] = field(default_factory=list)
    # Any namespace path -> (backend, path inside it), for storages outside the task's
    # sources and destinations (the copies check_consistency or restore read).
    open_path: Callable[[str], tuple[Backend, str]] | None = None


class Workflow(ABC):
    # Items run at once unless the task's option parallel_processing says otherwise:
    # several streams hide per-file latency (small files, fsync, object storage).
    default_streams = 4
    # Whether the runner walks the plan a first time only to count it, so that progress
    # runs against a known total. A workflow whose items cost little more than planning
    # them (a scan: the walk is the work) says False: its items then run as the plan
    # yields them, in one walk, and the totals grow as it goes.
    counts_first = True

    def __init__(self, plan: ExecutionPlan):
        self.execution = plan

    @abstractmethod
    def plan(self) -> Iterator[WorkItem]:
        """The work items, in processing order (computed from the sources)."""

    @abstractmethod
    def run(self, item: WorkItem, context: RunContext) -> ItemResult | PendingResult:
        """One item; may be called from several threads at once for different items.
        A PendingResult is only for workflows that settle (see PendingResult)."""

    def may_keep_cpu_busy(self) -> bool:
        """Whether some items may keep the CPU busy (see keeps_cpu_busy): only then does
        the runner start a stream for them."""
        return False

    def keeps_cpu_busy(self, item: WorkItem) -> bool:
        """Whether the item's step spends its time on this node's CPU rather than waiting
        for a disk or the network (a small file between two local disks). Unless the task
        sets parallel_processing, such items run one at a time, on a stream of their own:
        several at once would only take turns on the interpreter, each system call
        handing it to another thread (see tiermover.node.runner)."""
        return False

    def settle(self, pending: list[PendingResult]) -> list[ItemResult | Exception]:
        """Ends the items whose step returned these pending results (one stream's, in
        order): each one's result, or the StorageError or OSError that ended it alone
        (RunAgain: it runs again)."""
        raise NotImplementedError(f"{type(self).__name__} has no pending results")

    def discard(self, pending: list[PendingResult]) -> None:
        """Drops pending results without ending their items (the execution was
        abandoned): nothing of them may stay under a final name."""

    def describe(self, item: WorkItem) -> str:
        """How log lines name an item: its namespace path when the payload knows it."""
        found = getattr(item.payload, "found", item.payload)
        return getattr(found, "namespace_path", None) or item.key.split(":", 1)[-1] or "/"

    def finish(self, context: RunContext) -> list[CatalogChange]:
        """After every item succeeded or failed: work that needs them all done first
        (folder dates, emptied folders). Returns what it changed, for the catalog."""
        return []

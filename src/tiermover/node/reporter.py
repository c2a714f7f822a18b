"""Batches an execution's progress, log lines and finished items to the server."""

from __future__ import annotations

import logging
import time

import httpx

from tiermover.node.client import LeaseLost, NodeClient
from tiermover.node.progress import Progress
from tiermover.workflows.base import ItemResult, WorkItem

log = logging.getLogger("tiermover.node")

SEND_EVERY_SECONDS = 0.5
MAX_BATCH_ITEMS = 1000


class HttpReporter:
    def __init__(self, client: NodeClient, node_id: int, execution_id: str):
        self.client = client
        self.node_id = node_id
        self.execution_id = execution_id
        self._logs: list[dict] = []
        self._items: list[dict] = []
        self._phase: str | None = None
        # The claim already marked the execution as started: the first report can wait for
        # the first periodic send, so a tiny execution costs one report, its final one.
        self._last_sent = time.monotonic()
        self._command: str | None = None
        self.lease_lost = False

    def pending_command(self) -> str | None:
        if self.lease_lost:
            return "abandon"
        return self._command

    def phase(self, status: str, progress: Progress) -> None:
        self._phase = status
        self.tick(progress)

    def log(self, level: str, message: str, progress: Progress) -> None:
        self._logs.append({"level": level, "msg": message, "status_percent": progress.percent})

    def item_finished(self, item: WorkItem, result: ItemResult, progress: Progress) -> None:
        body = {
            "key": item.key, "outcome": result.outcome, "size": result.size,
            "checksum": result.checksum, "destination": result.destination,
            "message": result.message, "warning": result.warning, "entry": result.entry,
            "changes": [change.as_dict() for change in result.changes],
        }
        if result.seen:
            body["seen"] = {"columns": result.seen_columns, "rows": result.seen}
        self._items.append(body)
        if len(self._items) >= MAX_BATCH_ITEMS:
            self.send(progress)

    def tick(self, progress: Progress) -> None:
        if time.monotonic() - self._last_sent >= SEND_EVERY_SECONDS:
            self.send(progress)

    def _body(self, progress: Progress, final: dict | None = None) -> dict:
        return {"phase": self._phase, "counters": progress.counters(), "logs": self._logs,
                "items": self._items, "final": final}

    def send(self, progress: Progress) -> None:
        """Best effort while running: on a connection failure the batch waits for the next
        tick, so a restarting server never stalls the copy."""
        self._last_sent = time.monotonic()
        try:
            self._command = self.client.report(self.node_id, self.execution_id,
                                               self._body(progress))
        except LeaseLost:
            self.lease_lost = True
            return
        except httpx.HTTPError as error:
            log.warning("report for %s not delivered yet: %s", self.execution_id, error)
            return
        self._logs, self._items = [], []

    def final_report(self, progress: Progress, status: str,
                     message: str | None = None) -> dict:
        """The execution's last report, with whatever is still unsent; the node's
        dispatcher delivers it (batched with others that end close together)."""
        body = self._body(progress, {"status": status, "message": message})
        body["execution_id"] = self.execution_id
        self._logs, self._items = [], []
        return body

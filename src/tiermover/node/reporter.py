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
# A final report is retried this long (the server may be restarting) before giving up;
# the execution's lease then expires and it resumes elsewhere from its checkpoint.
FINAL_REPORT_PATIENCE = 600.0


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
        self._items.append({
            "key": item.key, "outcome": result.outcome, "size": result.size,
            "checksum": result.checksum, "destination": result.destination,
            "message": result.message, "warning": result.warning, "entry": result.entry,
            "changes": [change.as_dict() for change in result.changes],
        })
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

    def finish(self, progress: Progress, status: str, message: str | None = None,
               claim_next: bool = False) -> dict | None:
        """The final report; with `claim_next`, returns the next execution the server gave
        this node in the same request (None: claim again)."""
        body = self._body(progress, {"status": status, "message": message})
        try:
            return self.client.final_report(self.node_id, self.execution_id, body, claim_next,
                                            retry_until=time.monotonic() + FINAL_REPORT_PATIENCE)
        except LeaseLost:
            log.warning("execution %s was given to another node; dropping it", self.execution_id)
            return None

"""Hands claimed executions to a node's slots and carries their final reports back.

A node has `concurrency` slots. Two threads talk to the server for all of them:

- the sender posts every final report waiting in the outbox in one request, which also
  claims executions for the slots that are free at that moment (without waiting), so a
  busy node spends one request per batch of executions that ended close together;
- the poller long-polls for executions while slots stay free and the sender is idle.

A request only asks for slots that no other request in flight may fill, so a node never
holds an execution it has no slot for: what it claims starts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from tiermover.node.client import NodeClient

log = logging.getLogger("tiermover.node")

CLAIM_WAIT_SECONDS = 20.0
# A final report is retried this long (the server may be restarting) before giving up;
# the execution's lease then expires and it resumes elsewhere from its checkpoint.
FINAL_REPORT_PATIENCE = 600.0
# Reports per request; the rest wait for the next one.
MAX_REPORTS_PER_REQUEST = 200


class Dispatcher:
    def __init__(self, client: NodeClient, node_id: int, concurrency: int,
                 stopping: threading.Event, claim_wait: float = CLAIM_WAIT_SECONDS):
        self.client = client
        self.node_id = node_id
        self.concurrency = concurrency
        self.stopping = stopping
        self.claim_wait = claim_wait
        self._ready: deque[dict] = deque()  # claimed, waiting for a slot to take them
        self._outbox: list[dict] = []  # final reports not sent yet
        self._running = 0  # slots executing
        self._reserved = 0  # slots a claim in flight may fill
        self._sending = False
        self._changed = threading.Condition()

    # --- for the slots --------------------------------------------------------------------
    def take(self) -> dict | None:
        """The next execution for a slot; blocks until there is one (None once stopping)."""
        with self._changed:
            while not self._ready or self.stopping.is_set():
                if self.stopping.is_set():
                    return None
                self._changed.wait(0.5)
            self._running += 1
            return self._ready.popleft()

    def done(self, final_report: dict | None) -> None:
        """A slot is free again; its execution's final report (if any) goes out with the
        next request."""
        with self._changed:
            self._running -= 1
            if final_report is not None:
                self._outbox.append(final_report)
            self._changed.notify_all()

    # --- the two threads that talk to the server ------------------------------------------
    def threads(self) -> list[threading.Thread]:
        return [threading.Thread(target=self._send_loop, name="reports", daemon=True),
                threading.Thread(target=self._poll_loop, name="claims", daemon=True)]

    def _free(self) -> int:
        return self.concurrency - self._running - len(self._ready) - self._reserved

    def _receive(self, executions: list[dict], reserved: int, sent: bool = False) -> None:
        with self._changed:
            self._reserved -= reserved
            self._ready.extend(executions)
            if sent:
                self._sending = False
            self._changed.notify_all()

    def drain(self, timeout: float) -> bool:
        """Waits (at most `timeout` seconds) until the final reports already written are
        delivered: a node that stops does not make finished executions run again."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._outbox or self._sending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                while not self._outbox:
                    if self.stopping.is_set():
                        return
                    self._changed.wait(0.5)
                batch = self._outbox[:MAX_REPORTS_PER_REQUEST]
                del self._outbox[:len(batch)]
                # A stopping node must not be handed executions it would never run.
                want = 0 if self.stopping.is_set() else max(self._free(), 0)
                self._reserved += want
                self._sending = True
            executions: list[dict] = []
            try:
                answer = self.client.exchange(
                    self.node_id, batch, want,
                    retry_until=time.monotonic() + FINAL_REPORT_PATIENCE)
                executions = answer.get("executions") or []
                for execution_id, result in (answer.get("results") or {}).items():
                    if "lost" in result:
                        log.warning("execution %s was given to another node; dropping it "
                                    "(%s)", execution_id, result["lost"])
            except Exception as error:
                # The server stayed away past the patience, or refused the batch: those
                # executions' leases expire and they resume from their checkpoints.
                log.error("final reports of %s not delivered: %s",
                          ", ".join(r["execution_id"] for r in batch), error)
            finally:
                self._receive(executions, want, sent=True)

    def _poll_loop(self) -> None:
        while not self.stopping.is_set():
            with self._changed:
                # The sender claims for free slots along with its reports: no long-poll
                # while it has something to send.
                while self._free() <= 0 or self._sending or self._outbox:
                    if self.stopping.is_set():
                        return
                    self._changed.wait(0.5)
                want = self._free()
                self._reserved += want
            executions: list[dict] = []
            try:
                executions = self.client.claim_many(self.node_id, self.claim_wait, want)
            except Exception as error:  # server restarting: wait and claim again
                log.warning("claim failed (%s); retrying", error)
                self.stopping.wait(1.0)
            finally:
                self._receive(executions, want)

"""`tiermover worker`: register, claim executions with a long-poll, run them, report.

Each of the node's slots (its concurrency) runs one execution at a time; the dispatcher
(node/dispatch.py) claims executions for the free slots and sends final reports in
batches; a heartbeat thread keeps the node's leases alive and brings pause/stop commands
even between reports.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time

from tiermover import __version__
from tiermover.node.client import NodeClient
from tiermover.node.dispatch import Dispatcher
from tiermover.node.progress import Progress
from tiermover.node.references import CatalogReader
from tiermover.node.reporter import HttpReporter
from tiermover.node.plan import build_plan
from tiermover.node.runner import run_workflow
from tiermover.storage.open import reachable
from tiermover.workflows import workflow_class_for

log = logging.getLogger("tiermover.node")

# How long a stopping node waits for the final reports it has yet to deliver.
STOP_PATIENCE_SECONDS = 5.0
# Open files a node asks the system to allow it (see allow_more_open_files).
OPEN_FILES_WANTED = 65536


def allow_more_open_files() -> None:
    """Raises this process's soft limit on open files to its hard limit (up to
    OPEN_FILES_WANTED): small files wait open in their groups until they take their
    names together (see tiermover.node.runner.files_per_group), and the usual soft limit
    of 1024 would make the groups small."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = (OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY
                  else min(hard, OPEN_FILES_WANTED))
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError) as error:
        log.info("the limit on open files stays as it is: %s", error)


def default_node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class NodeWorker:
    def __init__(self, server_url: str, api_key: str, name: str | None = None,
                 concurrency: int = 1, fsync: bool = True, bandwidth_limit: int | None = None):
        self.client = NodeClient(server_url, api_key)
        self.name = name or default_node_name()
        self.concurrency = max(1, concurrency)
        self.fsync = fsync
        self.bandwidth_limit = bandwidth_limit
        self.stopping = threading.Event()
        self.node_id: int | None = None
        self.lease_seconds = 30.0
        self._running: dict[str, HttpReporter] = {}
        self.storages: list[str] = []
        self._lock = threading.Lock()
        self.dispatcher: Dispatcher | None = None

    # --- lifecycle --------------------------------------------------------------------
    def reachable_storages(self, patience: float = 0.0) -> list[str]:
        storages = self.client.storages(retry_until=time.monotonic() + patience)
        return sorted(s["key"] for s in storages if reachable(s.get("backend")))

    def register(self, patience: float = 300.0) -> None:
        deadline = time.monotonic() + patience
        reachable = self.reachable_storages(patience)
        self.storages = reachable
        node = self.client.register(self.name, self.concurrency, reachable, __version__,
                                    retry_until=deadline)
        self.node_id = node["id"]
        self.lease_seconds = node.get("lease_seconds", 30.0)
        log.info("node %s registered (id %s), reaching %d storages", self.name, self.node_id,
                 len(reachable))

    def run(self) -> None:
        """Blocks until `stop()`."""
        allow_more_open_files()
        self.register()
        self.dispatcher = Dispatcher(self.client, self.node_id, self.concurrency, self.stopping)
        threads = [threading.Thread(target=self._slot, name=f"slot-{i}", daemon=True)
                   for i in range(self.concurrency)]
        threads += self.dispatcher.threads()
        threads.append(threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True))
        for thread in threads:
            thread.start()
        self.stopping.wait()
        # Executions that ended are reported before the node goes. The claim long-poll is
        # a daemon, and an execution a slot still runs resumes elsewhere from its
        # checkpoint, so there is no point waiting for those.
        self.dispatcher.drain(STOP_PATIENCE_SECONDS)
        for thread in threads:
            thread.join(timeout=0.2)

    def stop(self) -> None:
        self.stopping.set()

    # --- work -------------------------------------------------------------------------
    def _slot(self) -> None:
        while True:
            spec = self.dispatcher.take()
            if spec is None:
                return
            final = None
            try:
                final = self.run_execution(spec)
            finally:
                self.dispatcher.done(final)

    def run_execution(self, spec: dict) -> dict | None:
        """Runs the execution; returns its final report (None when it was abandoned: the
        server gave it to another node)."""
        reporter = HttpReporter(self.client, self.node_id, spec["id"])
        with self._lock:
            self._running[spec["id"]] = reporter
        progress = Progress()
        try:
            workflow_class = workflow_class_for(spec["action"])
            if workflow_class is None:
                reporter.log("error", f"the {spec['action']} action is not available on this "
                                      "node yet", progress)
                return reporter.final_report(progress, "error",
                                             f"{spec['action']} is not supported yet")
            catalog = CatalogReader(self.client, self.node_id, spec["id"])
            plan = build_plan(spec, self.fsync, self.bandwidth_limit, catalog,
                              storages=lambda: self.client.storages(retry_until=None))
            workflow = workflow_class(plan)
            outcome = run_workflow(workflow, set(spec.get("finished_keys") or ()), reporter,
                                   progress, self.bandwidth_limit)
            if outcome.status == "abandoned":
                return None
            return reporter.final_report(progress, outcome.status, outcome.message)
        except Exception as error:  # a bug must not kill the slot: report it and go on
            log.exception("execution %s failed", spec["id"])
            reporter.log("error", f"internal error on node {self.name}: {error}", progress)
            return reporter.final_report(progress, "error", str(error))
        finally:
            with self._lock:
                self._running.pop(spec["id"], None)

    def _heartbeats(self) -> None:
        """Every second: renew leases, pick up commands, and declare storages that
        appeared (a container created after the node started)."""
        interval = min(max(self.lease_seconds / 6, 0.2), 1.0)
        while not self.stopping.wait(interval):
            try:
                reachable = self.reachable_storages()
                if reachable != self.storages:
                    self.client.register(self.name, self.concurrency, reachable, __version__,
                                         retry_until=None)
                    self.storages = reachable
            except Exception as error:
                log.warning("storage refresh failed: %s", error)
            with self._lock:
                running = dict(self._running)
            try:
                commands = self.client.heartbeat(self.node_id, list(running))
            except Exception as error:
                log.warning("heartbeat failed: %s", error)
                continue
            for execution_id, command in commands.items():
                reporter = running.get(execution_id)
                if reporter is not None:
                    reporter._command = command

"""The server's CPU for a small-file copy's catalog, from a node's reports alone.

    .venv/bin/python bench/copy_reports.py [--files 20000] [--runs 5] [--workdir DIR]

The real server (SQLite), a node that speaks the node protocol from this process without
copying anything: it claims a copy task's execution and reports `--files` copied files
of 4 KiB (in folders of 100) exactly as a node's reporter sends them (HttpReporter, the
same CatalogChange per file as the copy workflow), in batches of the reporter's size,
then its final report. Each run copies into a new folder, so after the first run the
sources are catalogued and the destinations new, as in bench/copy.py's later runs.

Per run it prints the server's CPU per file and the time the reports took; it isolates
the server's share of bench/copy_cpu.py (no node competing for the two cores, no disk).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness import Processes, Tiermover, cpu_seconds

from tiermover.node.client import NodeClient
from tiermover.node.progress import Progress
from tiermover.node.reporter import MAX_BATCH_ITEMS, HttpReporter
from tiermover.workflows.base import CatalogChange, ItemResult, WorkItem

FILE_SIZE = 4096
PER_FOLDER = 100


def attributes(now: float, inode: int) -> dict:
    return {"type": "file", "size": FILE_SIZE, "mode": 0o100644, "uid": 1000, "gid": 1000,
            "mtime": now - 3600 + inode * 1e-6, "atime": now, "ctime": now - 60}


def report_copy(client: NodeClient, node_id: int, spec: dict, files: int, run: int,
                sources_changed: float) -> None:
    reporter = HttpReporter(client, node_id, spec["id"])
    progress = Progress(to_process_files=files, to_process_size=files * FILE_SIZE)
    reporter.phase("in_progress", progress)
    now = time.time()
    for index in range(files):
        relative = f"tree/d{index // PER_FOLDER:03}/f{index % PER_FOLDER:03}"
        destination = f"/bench-out/run-{run}/{relative}"
        checksum = f"{index:032x}"
        change = CatalogChange("written", destination, entry=attributes(now, index),
                               checksum=checksum, algorithm="xxh128",
                               copy_of=f"/bench-data/{relative}",
                               source_entry=attributes(sources_changed, index))
        result = ItemResult("done", size=FILE_SIZE, checksum=checksum, destination=destination,
                            changes=[change])
        progress.processed_files += 1
        progress.processed_size += FILE_SIZE
        reporter.item_finished(WorkItem(key=f"0:{relative}", size=FILE_SIZE), result, progress)
    body = reporter.final_report(progress, "done")
    body.pop("execution_id")
    client.final_report(node_id, spec["id"], body, claim_next=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tiermover-copy-reports-", dir=args.workdir))
    processes = Processes()
    tiermover = Tiermover(work, processes, "copy-reports")
    rows = []
    try:
        tiermover.start()
        for name in ("data", "out"):
            (work / name).mkdir()
        (work / "data" / "tree").mkdir()
        tiermover.add_share("bench-data", work / "data")
        tiermover.add_share("bench-out", work / "out")
        key = tiermover.checked(tiermover.api.post("/users/me/api_keys", json={
            "name": "bench node", "api_key_scopes": [{"controller": "nodes", "action": "work"}]}),
            201)["key"]
        client = NodeClient(tiermover.url, key)
        storages = [s["key"] for s in client.storages(retry_until=time.monotonic() + 30)]
        node_id = client.register("bench-reports", 1, storages, "bench",
                                  retry_until=time.monotonic() + 30)["id"]
        sources_changed = time.time() - 7200  # the same sources, unchanged, in every run
        for run in range(args.runs):
            task = tiermover.create_task("copy", ["/bench-data/tree"], [f"/bench-out/run-{run}"])
            tiermover.checked(tiermover.api.put(f"/tasks/{task}/action/run"), 202)
            spec = client.claim(node_id, wait=10)
            if spec is None:
                raise RuntimeError("the execution was not handed out")
            before = cpu_seconds(tiermover.server.pid)
            started = time.perf_counter()
            report_copy(client, node_id, spec, args.files, run, sources_changed)
            seconds = time.perf_counter() - started
            server = cpu_seconds(tiermover.server.pid) - before
            execution = tiermover.checked(tiermover.api.get(f"/task_executions/{spec['id']}"), 200)
            if execution["status"] != "done":
                raise RuntimeError(f"run {run} ended {execution['status']}")
            rows.append((server, seconds))
            tiermover.log(f"run {run}: server CPU {server:.2f} s "
                          f"({server / args.files * 1e6:.0f} us per file), reports took "
                          f"{seconds:.2f} s in batches of {MAX_BATCH_ITEMS}")
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    later = rows[1:] or rows
    server = statistics.median(row[0] for row in later)
    print(f"\nmedian of runs 1-{len(rows) - 1} (sources catalogued): server CPU {server:.2f} s, "
          f"{server / args.files * 1e6:.0f} us per file")


if __name__ == "__main__":
    main()

"""Benchmark of scans: files catalogued per second, against `find -printf` as the ceiling.

    .venv/bin/python bench/scan.py [--files 200000] [--runs 3]

A tree of empty files (100 per folder) in four equal parts is built once. Each run
registers the tree (and its first part) as new NAS shares, so that every scan is a first
scan that adds every file to the catalog, and scans them with a task run through the
Nodeum API on a real server (SQLite) and a `tiermover worker` started for that scan
alone: its peak resident memory (VmHWM) is read at the end of the scan of the first
part (a quarter of the files) and of the whole tree. The ceiling is `find` printing
each entry's stat fields (what a scan records) over the same tree. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (  # bench/ is the script's folder, first on the path
    Processes, Tiermover, cpu_seconds, free_bytes, status_kib, sync_filesystem,
)

FILES_PER_FOLDER = 100
PARTS = 4
RUN_TIMEOUT = 3600.0
TARGET_VS_FIND = 0.5
# What a scan records of each entry: path, type, size, mode, uid, gid and three dates.
FIND_FORMAT = "%p %y %s %m %U %G %T@ %A@ %C@\n"


def build_tree(root: Path, files: int) -> int:
    """`files` empty files in PARTS parts (part-0 ... part-3), 100 per folder."""
    made = 0
    per_part = files // PARTS
    for part in range(PARTS):
        count = per_part if part < PARTS - 1 else files - per_part * (PARTS - 1)
        for index in range(count):
            folder = root / f"part-{part}" / f"d{index // FILES_PER_FOLDER:05d}"
            if index % FILES_PER_FOLDER == 0:
                folder.mkdir(parents=True)
            os.close(os.open(folder / f"f{index % FILES_PER_FOLDER:03d}.dat",
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            made += 1
    return made


def count_entries(root: Path) -> tuple[int, int]:
    """(files, folders) below `root`."""
    files = folders = 0
    for _, directories, names in os.walk(root):
        files += len(names)
        folders += len(directories)
    return files, folders


@dataclass
class ScanRun:
    files: int
    seconds: float
    node_peak_kib: int
    node_cpu: float
    server_cpu: float
    catalogued: int | None  # files the catalog holds for the share afterwards


@dataclass
class Measures:
    tiermover: dict[str, list[ScanRun]] = field(default_factory=dict)  # "part" | "all"
    find: dict[str, list[float]] = field(default_factory=dict)


class ScanBench:
    def __init__(self, workdir: Path, processes: Processes, args):
        self.workdir = workdir
        self.processes = processes
        self.args = args
        self.tiermover = Tiermover(workdir, processes, "scan")
        self.tree = workdir / "tree"
        self.database = workdir / "tiermover-data" / "tiermover.db"
        self.shares = 0

    def log(self, message: str) -> None:
        print(f"[scan] {message}", flush=True)

    def catalogued(self, share: str) -> int | None:
        """Files of the share in the catalog, read from the server's SQLite file (the API
        shows the catalog one folder at a time)."""
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30) as db:
                row = db.execute(
                    "SELECT count(*) FROM files JOIN nas_shares ON files.storage_id = "
                    "nas_shares.id WHERE files.storage_kind = 'nas_share' AND "
                    "nas_shares.name = ? AND files.type = 'file'", (share,)).fetchone()
            return row[0]
        except sqlite3.Error as error:
            self.log(f"could not count the catalog's files: {error}")
            return None

    def scan(self, path: Path, expected: int) -> ScanRun:
        self.shares += 1
        share = self.tiermover.add_share(f"scan-{self.shares}", path)
        node_name = f"scan-node-{self.shares}"
        node = self.tiermover.start_node(node_name)
        # The node picks the new share up with its registration.
        self.tiermover.wait_node(node_name, storages=1)
        task_id = self.tiermover.create_task("scan", [f"/{share}"], workflow_type="maintenance")
        sync_filesystem(self.workdir)
        cpu_before = cpu_seconds(node.pid), cpu_seconds(self.tiermover.server.pid)
        execution, seconds = self.tiermover.run_task(task_id, RUN_TIMEOUT, poll=0.5)
        peak = status_kib(node.pid, "VmHWM")
        cpu = (cpu_seconds(node.pid) - cpu_before[0],
               cpu_seconds(self.tiermover.server.pid) - cpu_before[1])
        self.tiermover.stop_node(node_name)
        if execution["status"] != "done":
            log = "\n  ".join(self.tiermover.execution_log(execution["id"]))
            raise RuntimeError(f"scan of {path} ended {execution['status']}:\n  {log}")
        found = self.catalogued(share)
        run = ScanRun(expected, seconds, peak, cpu[0], cpu[1], found)
        self.log(f"  tiermover scan {expected:>8,} files: {seconds:7.2f} s, "
                 f"{expected / seconds:8.0f} files/s, node peak RSS {peak / 1024:.0f} MiB, "
                 f"CPU node {cpu[0]:.1f} s server {cpu[1]:.1f} s, catalogued {found}")
        return run

    def find(self, path: Path, expected: int) -> float:
        sync_filesystem(self.workdir)
        started = time.monotonic()
        with open(os.devnull, "wb") as sink:
            subprocess.run(["find", str(path), "-printf", FIND_FORMAT], stdout=sink, check=True)
        seconds = time.monotonic() - started
        self.log(f"  find           {expected:>8,} files: {seconds:7.2f} s, "
                 f"{expected / seconds:8.0f} files/s")
        return seconds

    def run(self) -> tuple[Measures, dict[str, int]]:
        needed = self.args.files * 4096 * 2  # an inode and a catalog row per file, roughly
        if free_bytes(self.workdir) < needed:
            raise RuntimeError(f"not enough free space in {self.workdir}")
        self.log(f"building a tree of {self.args.files:,} empty files")
        started = time.monotonic()
        build_tree(self.tree, self.args.files)
        sizes = {"part": count_entries(self.tree / "part-0")[0], "all": count_entries(self.tree)[0]}
        self.log(f"built in {time.monotonic() - started:.0f} s; starting the server")
        self.tiermover.start()
        measures = Measures()
        targets = {"part": self.tree / "part-0", "all": self.tree}
        for round_index in range(self.args.runs):
            self.log(f"round {round_index + 1} of {self.args.runs}")
            for which in ("part", "all"):
                measures.find.setdefault(which, []).append(self.find(targets[which], sizes[which]))
                measures.tiermover.setdefault(which, []).append(
                    self.scan(targets[which], sizes[which]))
        return measures, sizes


def report(measures: Measures, sizes: dict[str, int], args) -> None:
    print(f"\nScans: median of {args.runs} runs, {os.cpu_count()} CPUs; a first scan of a "
          f"new share each run\n")
    header = (f"{'tree':<14} {'tool':<10} {'median s':>9} {'files/s':>9} {'x find':>7} "
              f"{'node peak RSS':>14} {'CPU node/server s':>18}  catalogued")
    print(header)
    print("-" * len(header))
    verdicts = []
    for which, label in (("part", "first quarter"), ("all", "whole tree")):
        runs = measures.tiermover[which]
        seconds = statistics.median(r.seconds for r in runs)
        find_seconds = statistics.median(measures.find[which])
        ratio = find_seconds / seconds
        peak = max(r.node_peak_kib for r in runs)
        cpu = (statistics.median(r.node_cpu for r in runs),
               statistics.median(r.server_cpu for r in runs))
        catalogued = {r.catalogued for r in runs}
        name = f"{sizes[which]:,} files"
        print(f"{name:<14} {'tiermover':<10} {seconds:>9.2f} {sizes[which] / seconds:>9.0f} "
              f"{ratio:>7.2f} {peak / 1024:>10.0f} MiB {cpu[0]:>8.1f} / {cpu[1]:<7.1f}  "
              f"{', '.join(str(c) for c in sorted(catalogued, key=str))}")
        print(f"{'':<14} {'find':<10} {find_seconds:>9.2f} {sizes[which] / find_seconds:>9.0f}")
        verdicts.append((f"{label}: >= {TARGET_VS_FIND:.1f}x find", ratio))
    peaks = {which: max(r.node_peak_kib for r in measures.tiermover[which])
             for which in ("part", "all")}
    growth = peaks["all"] / peaks["part"]
    print(f"\nnode peak RSS: {peaks['part'] / 1024:.0f} MiB at {sizes['part']:,} files, "
          f"{peaks['all'] / 1024:.0f} MiB at {sizes['all']:,} files (x{growth:.2f})")
    if any(r.catalogued != sizes[which] for which in measures.tiermover
           for r in measures.tiermover[which]):
        print("note: the catalog does not hold every scanned file: the number above measures "
              "the walk,\n      the reports and what the server stores of them.")
    print("\ntargets:")
    for what, ratio in verdicts:
        print(f"  {what:<32} x{ratio:.2f}: {'ok' if ratio >= TARGET_VS_FIND else 'MISSED'}")
    # "Does not grow": a quarter of the files may not cost more than a tenth more memory.
    print(f"  {'peak node memory flat':<32} x{growth:.2f}: "
          f"{'ok' if growth <= 1.1 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200_000, help="files in the whole tree")
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (the median counts)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the tree goes (default: a temporary directory)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the work directory's logs (server, nodes)")
    args = parser.parse_args()
    if args.files < PARTS * FILES_PER_FOLDER:
        parser.error(f"--files must be at least {PARTS * FILES_PER_FOLDER}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="tiermover-scan-", dir=args.workdir))
    processes = Processes()
    keep = args.keep_logs
    try:
        measures, sizes = ScanBench(workdir, processes, args).run()
        report(measures, sizes, args)
    except BaseException:
        keep = True
        raise
    finally:
        processes.stop_all()
        shutil.rmtree(workdir / "tree", ignore_errors=True)
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

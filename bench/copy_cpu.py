"""Where a small-file copy's time goes: the node's and the server's CPU, per variant.

    .venv/bin/python bench/copy_cpu.py [--files 20000] [--runs 6]
        [--variants "parallel_processing=4;parallel_processing=1"] [--node-args=--no-fsync]
        [--workdir DIR] [--timeline] [--keep]

The same server (SQLite) and node as bench/copy.py, one data set of `--files` files of
4 KiB in folders of 100, then `--runs` copies of it through the API, each into a new
folder, the variants (task options, `;`-separated) taking turns. Nothing is deleted until
the end (on this machine's file system, files created right after thousands were deleted
cost seconds more; see bench/README.md). Per run it prints the time from the run request
to the execution's end, the node's CPU (user and system), the node's context switches
per file (`perf stat`, when perf is installed) and the server's CPU, then each variant's
medians. It compares tiermover with itself, not with a peer: bench/copy.py does that.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from copy_bench import Filler, build, data_sets
from harness import Processes, Tiermover, sync_filesystem


def user_system_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100  # os.sysconf("SC_CLK_TCK") on Linux
    return int(fields[11]) / ticks, int(fields[12]) / ticks


class SwitchCounter:
    """Context switches of a process and all its threads (threads that end too) while it
    runs, from `perf stat`; None without perf."""

    def __init__(self, pid: int):
        self.process = None
        if shutil.which("perf"):
            self.process = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-e", "context-switches", "-p", str(pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(2)
        lines = self.process.communicate(timeout=30)[1].strip().splitlines()
        try:
            return int(lines[-1].split(",")[0])
        except (IndexError, ValueError):
            return None  # perf not allowed here (perf_event_paranoid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--variants", default="parallel_processing=4;parallel_processing=1",
                        help="task options per variant: key=value[,key=value][;...]")
    parser.add_argument("--node-args", default="", help="extra `tiermover worker` arguments")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--timeline", action="store_true",
                        help="print each run's execution log with its timestamps")
    parser.add_argument("--keep", action="store_true",
                        help="leave the work directory (a run right after another's "
                             "cleanup is slowed by it, see bench/README.md)")
    args = parser.parse_args()
    variants = [dict(pair.split("=", 1) for pair in variant.split(",") if pair)
                for variant in args.variants.split(";")]
    work = Path(tempfile.mkdtemp(prefix="tiermover-copy-cpu-", dir=args.workdir))
    processes = Processes()
    tiermover = Tiermover(work, processes, "copy-cpu")
    results: dict[str, list[tuple[float, float, float, float, float | None]]] = defaultdict(list)
    try:
        tiermover.start()
        for name in ("data", "out"):
            (work / name).mkdir()
        tiermover.add_share("bench-data", work / "data")
        tiermover.add_share("bench-out", work / "out")
        node = tiermover.start_node("bench-node", *args.node_args.split())
        data = data_sets(args.files / 20_000)["small"]
        tiermover.log(f"building {data.description}")
        build(data, work / "data", Filler())
        # Untimed: the data read once (page cache), as bench/copy.py's warm-up.
        subprocess.run(["cp", "-r", str(work / "data" / data.name), str(work / "warm-up")],
                       check=True)
        for run in range(args.runs):
            options = variants[run % len(variants)]
            label = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
            task = tiermover.create_task("copy", [f"/bench-data/{data.name}"],
                                         [f"/bench-out/run-{run}"], options=options)
            (work / "out" / f"run-{run}").mkdir()
            sync_filesystem(work)
            switches = SwitchCounter(node.pid)
            node_before = user_system_seconds(node.pid)
            server_before = sum(user_system_seconds(tiermover.server.pid))
            execution, seconds = tiermover.run_task(task, 1800, poll=0.5)
            node_after = user_system_seconds(node.pid)
            server_cpu = sum(user_system_seconds(tiermover.server.pid)) - server_before
            counted = switches.stop()
            if execution["status"] != "done":
                raise RuntimeError(f"run {run} ended {execution['status']}")
            user, system = (after - before for after, before in zip(node_after, node_before))
            per_file = None if counted is None else counted / data.files
            if args.timeline:
                for line in tiermover.checked(tiermover.api.get(
                        f"/task_executions/{execution['id']}/logs", params={"limit": 50}), 200):
                    print(f"    {line['timestamp']} {line['msg'][:100]}")
            results[label].append((seconds, user, system, server_cpu, per_file))
            tiermover.log(f"run {run} [{label}]: {seconds:.2f} s, node CPU {user + system:.2f} s "
                          f"(user {user:.2f}, system {system:.2f}), switches per file "
                          f"{'-' if per_file is None else f'{per_file:.1f}'}, server CPU "
                          f"{server_cpu:.2f} s")
    finally:
        processes.stop_all()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'variant':<32} {'runs':>4} {'time s':>7} {'node user':>9} {'node sys':>8} "
          f"{'switch/f':>8} {'server':>7}   (medians)")
    for label, rows in results.items():
        column = lambda index: statistics.median(row[index] for row in rows)  # noqa: E731
        known = [row[4] for row in rows if row[4] is not None]
        switch = f"{statistics.median(known):8.1f}" if known else f"{'-':>8}"
        print(f"{label:<32} {len(rows):>4} {column(0):7.2f} {column(1):9.2f} {column(2):8.2f} "
              f"{switch} {column(3):7.2f}")


if __name__ == "__main__":
    main()

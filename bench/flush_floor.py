"""What durability costs a small-file copy, without tiermover around it.

    .venv/bin/python bench/flush_floor.py [--files 20000] [--rounds 2] [--workdir DIR]

The small set (4 KiB files in folders of 100) copied by a minimal single-threaded Python
loop (open, read, hash with xxh128, write under a temporary name, rename), once per way
of making the files durable before they take their names, the ways taking turns each
round, against `rclone copy` then `sync -f` of the destination's file system:

  - fdatasync: groups of 32 files, each file's writeback started, then one fdatasync
    per file, then one fsync per folder (LocalBackend.commit_group's file-by-file way);
  - syncfs-32, syncfs-256: one syncfs before a group's renames and one after
    (the way it takes where the file system flushes whole);
  - none: no flush at all (the loop's own cost: the floor of any way).

It shows the cost of the flushes themselves on this file system, apart from the node's
and the server's work. Run it on the file system to judge (`--workdir`): on ext4 without
a journal (this machine's root) and with one (a loop-mounted image) the answers differ.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import xxhash

from copy_bench import Filler, build, data_sets
from harness import sync_filesystem

_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
WAYS = {"fdatasync": 32, "syncfs-32": 32, "syncfs-256": 256, "none": 32}


def copy_tree(source: Path, target: Path, way: str) -> None:
    group_size = WAYS[way]
    root = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    group: list[tuple[int, str, str]] = []
    folders: set[str] = set()

    def settle() -> None:
        if way == "fdatasync":
            for fd, _, _ in group:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            for fd, _, _ in group:
                os.fdatasync(fd)
        elif way.startswith("syncfs") and _syncfs(root) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
        for fd, temp, final in group:
            os.close(fd)
            os.rename(temp, final)
        if way == "fdatasync":
            for folder in folders:
                folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(folder_fd)
                os.close(folder_fd)
        elif way.startswith("syncfs"):
            _syncfs(root)
        group.clear()
        folders.clear()

    try:
        for folder in sorted(os.listdir(source)):
            into = os.path.join(target, folder)
            os.mkdir(into)
            for entry in os.scandir(os.path.join(source, folder)):
                fd = os.open(entry.path, os.O_RDONLY)
                data = os.read(fd, 1 << 20)
                os.close(fd)
                xxhash.xxh3_128(data).hexdigest()
                temp = os.path.join(into, f".{entry.name}.part")
                out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(out, data)
                group.append((out, temp, os.path.join(into, entry.name)))
                folders.add(into)
                if len(group) >= group_size:
                    settle()
        settle()
    finally:
        os.close(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tiermover-flush-floor-", dir=args.workdir))
    rclone = shutil.which("rclone") or str(Path(__file__).resolve().parent.parent
                                           / ".venv" / "bin" / "rclone")
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        data = data_sets(args.files / 20_000)["small"]
        source = build(data, work / "data", Filler())
        print(f"{data.description}, in {work}")
        for round_number in range(args.rounds):
            for way in [*WAYS, "rclone"]:
                target = work / f"{way}-{round_number}"
                target.mkdir()
                sync_filesystem(work)
                started = time.perf_counter()
                before = resource.getrusage(resource.RUSAGE_SELF)
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                if way == "rclone":
                    subprocess.run([rclone, "copy", str(source), str(target),
                                    "--transfers", "4"], check=True, capture_output=True)
                    sync_filesystem(target)
                    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                    before = children
                else:
                    copy_tree(source, target, way)
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                seconds = time.perf_counter() - started
                cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
                results.setdefault(way, []).append((seconds, cpu))
                print(f"  round {round_number} {way:<11} {seconds:6.2f} s  CPU {cpu:5.2f} s",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'way':<11} {'best s':>7} {'CPU s':>6}  (best of {args.rounds} rounds; nothing "
          "else runs, so the best is the least disturbed)")
    for way, runs in results.items():
        seconds, cpu = min(runs)
        print(f"{way:<11} {seconds:7.2f} {cpu:6.2f}")


if __name__ == "__main__":
    main()

"""Benchmark of the tape format: writing a tree to a virtual cartridge and reading it back,
against GNU tar writing and extracting the same tree to and from a file on the same disk.

    .venv/bin/python bench/tape.py [--files 200] [--file-mb 1] [--runs 3] [--dir DIR]

Write: a session of every file of the tree (label first, as a fresh cartridge), closed
with its index and trailer, versus `tar -cf tree.tar -C tree .`. Read: every file in
on-tape order (tiermover.storage.tape.reader.open_in_order) written out under a folder,
versus `tar -xf tree.tar -C out`. Both sides end with an fsync of what they wrote, so
neither is measured against the page cache alone; both read a source that sits in the
page cache (the tree was just made, the cartridge just written) as the other does.
Median of the runs; the ratio is tiermover's throughput over tar's (target >= 0.9x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tiermover.storage.tape.format import DEFAULT_RECORD_SIZE  # noqa: E402
from tiermover.storage.tape.reader import open_in_order, read_catalog  # noqa: E402
from tiermover.storage.tape.virtual import VirtualLibrary  # noqa: E402
from tiermover.storage.tape.writer import SessionWriter, write_label  # noqa: E402

CHUNK = 1024 * 1024


def make_tree(root: Path, files: int, size: int) -> int:
    """`files` files of `size` bytes, distinct contents, in 10 folders; bytes in all."""
    block = os.urandom(CHUNK)
    for index in range(files):
        folder = root / f"dir{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"file-{index:05d}.bin", "wb") as out:
            left = size
            out.write(index.to_bytes(8, "little"))
            left -= 8
            while left > 0:
                out.write(block[:min(left, CHUNK)])
                left -= min(left, CHUNK)
    return files * size


def fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def tape_write(tree: Path, library: VirtualLibrary, barcode: str) -> float:
    start = time.perf_counter()
    with library.open_drive(0, DEFAULT_RECORD_SIZE) as device:
        write_label(device)
        session = SessionWriter.open(device)
        for path in sorted(tree.rglob("*")):
            if not path.is_file():
                continue
            info = path.stat()
            out = session.begin_file(path.relative_to(tree).as_posix(), info.st_size,
                                     info.st_mtime, info.st_mode, info.st_uid, info.st_gid)
            with open(path, "rb", buffering=0) as source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
            out.commit()
        session.close()  # index, trailer, fsync
    return time.perf_counter() - start


def tape_read(library: VirtualLibrary, out: Path) -> float:
    start = time.perf_counter()
    with library.open_drive(0, DEFAULT_RECORD_SIZE) as device:
        volume, entries = read_catalog(device)
        files = [entry for entry in entries if entry.type == "file"]
        made: set[Path] = set()
        for entry, reader in open_in_order(device, files, volume.label.record_size):
            target = out / entry.path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            with open(target, "wb", buffering=0) as sink:
                while chunk := reader.read(CHUNK):
                    sink.write(chunk)
            # As tar does when it extracts: the file's mode and dates.
            os.chmod(target, entry.mode)
            os.utime(target, (entry.atime or entry.mtime, entry.mtime))
    fsync_tree(out)
    return time.perf_counter() - start


def tar_write(tree: Path, archive: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["tar", "-cf", str(archive), "-C", str(tree), "."], check=True)
    fd = os.open(archive, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def tar_read(archive: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    fsync_tree(out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-mb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to work (default: a temporary "
                        "directory under /tmp); tree, cartridge and tar file share its disk")
    args = parser.parse_args()
    size = int(args.file_mb * 1024 * 1024)

    with tempfile.TemporaryDirectory(prefix="bench-tape-", dir=args.dir) as work:
        work = Path(work)
        tree = work / "tree"
        total = make_tree(tree, args.files, size)
        fsync_tree(tree)
        robot = work / "robot"
        robot.mkdir()
        library = VirtualLibrary.create(robot, storage_slots=1, io_slots=0, drives=1,
                                        cartridge_capacity=total * 2 + 64 * 1024 * 1024)
        barcode = "BENCH1L5"
        library.insert_blank([barcode])
        library.load(barcode, 0)
        archive = work / "tree.tar"
        times: dict[str, list[float]] = {"tape write": [], "tar -cf": [], "tape read": [],
                                         "tar -xf": []}
        for _ in range(args.runs):
            times["tar -cf"].append(tar_write(tree, archive))
            times["tape write"].append(tape_write(tree, library, barcode))
            for name, read in (("tar -xf", lambda out: tar_read(archive, out)),
                               ("tape read", lambda out: tape_read(library, out))):
                out = work / "out"
                out.mkdir()
                times[name].append(read(out))
                shutil.rmtree(out)
            archive.unlink()

    mb = total / 1e6
    print(f"tree: {args.files} files of {args.file_mb:g} MiB ({mb:.0f} MB), median of "
          f"{args.runs} runs")
    print(f"{'':12}{'seconds':>10}{'MB/s':>10}")
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in median.items():
        print(f"{name:12}{seconds:10.3f}{mb / seconds:10.0f}")
    for ours, theirs in (("tape write", "tar -cf"), ("tape read", "tar -xf")):
        ratio = median[theirs] / median[ours]
        print(f"{ours} vs {theirs}: {ratio:.2f}x ({'meets' if ratio >= 0.9 else 'misses'} "
              "the 0.9x target)")


if __name__ == "__main__":
    main()

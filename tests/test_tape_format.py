"""The on-tape format, checked with real GNU tar.

Cartridges live in a virtual library, which stands in for a physical changer and drive
(no tape hardware runs here); the cartridge files are what GNU tar reads, unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tiermover.storage.checksums import checksum_of
from tiermover.storage.tape.driver import TapeError, WriteProtected
from tiermover.storage.tape.format import (
    META_DIR, BlankCartridge, CartridgeFull, FileTooLarge, ForeignCartridge, FormatError,
)
from tiermover.storage.tape.reader import (
    load_volume, open_in_order, read_catalog, read_label,
)
from tiermover.storage.tape.virtual import VirtualLibrary
from tiermover.storage.tape.writer import SessionWriter, write_label

RECORD = 8 * 1024
CAPACITY = 2 * 1024 * 1024


@pytest.fixture
def library(tmp_path) -> VirtualLibrary:
    root = tmp_path / "library"
    root.mkdir()
    library = VirtualLibrary.create(root, storage_slots=3, io_slots=1, drives=1,
                                    cartridge_capacity=CAPACITY)
    library.insert_blank(["FMT001L5", "FMT002L5", "FMT003L5"])
    return library


@pytest.fixture
def device(library):
    library.load("FMT001L5", 0)
    with library.open_drive(0, RECORD) as device:
        write_label(device, RECORD)
        yield device


def make_tree(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    contents = {}
    for index, (name, size) in enumerate(sizes.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        os.utime(path, (1_600_000_000.25 + index, 1_500_000_000.5 + index))
        contents[name] = data
    return contents


def write_session(device, root: Path, names, prefix: str = "share") -> list:
    writer = SessionWriter.open(device)
    written = []
    for name in names:
        path = root / name
        info = path.stat()
        handle = writer.begin_file(f"{prefix}/{name}", info.st_size, info.st_mtime,
                                   info.st_mode, info.st_uid, info.st_gid, info.st_atime)
        with open(path, "rb") as source:
            while chunk := source.read(100_000):
                handle.write(chunk)
        written.append(handle.commit())
    writer.close()
    return written


def gnu_tar(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(["tar", *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done


def cartridge(library, barcode="FMT001L5") -> str:
    return str(library.cartridge_path(barcode))


# --- GNU tar reads what tiermover wrote ---------------------------------------------------------

def test_gnu_tar_lists_and_extracts_every_session(library, device, tmp_path):
    source = tmp_path / "source"
    contents = make_tree(source, {"a.txt": 10, "dir/b.bin": 300_000, "dir/deep/c": 0,
                                  "é ü/" + "long" * 40 + ".dat": 5000})
    names = list(contents)
    write_session(device, source, names[:2])
    write_session(device, source, names[2:])

    listed = gnu_tar("-t", "-i", "-f", cartridge(library)).stdout.splitlines()
    data_members = [name for name in listed if not name.startswith(META_DIR)]
    assert data_members == [f"share/{name}" for name in names]
    assert f"{META_DIR}/label.json" == listed[0]
    assert f"{META_DIR}/index-000002.json" in listed

    out = tmp_path / "out"
    out.mkdir()
    gnu_tar("-x", "-i", "-f", cartridge(library), cwd=out)
    for name, data in contents.items():
        extracted = out / "share" / name
        assert extracted.read_bytes() == data
        assert extracted.stat().st_mtime == (source / name).stat().st_mtime  # to the 1/100 s
        assert extracted.stat().st_mode == (source / name).stat().st_mode


def test_the_cartridge_describes_itself_without_a_catalog(library, device, tmp_path):
    source = tmp_path / "source"
    contents = make_tree(source, {f"f{i}": 1000 * i + 1 for i in range(6)})
    first = write_session(device, source, ["f0", "f1", "f2"])
    second = write_session(device, source, ["f3", "f4", "f5"])
    device.close()

    # Another process, another driver object: only the cartridge file is shared.
    again = VirtualLibrary(library.directory).open_drive(0, 512)
    volume, entries = read_catalog(again)
    assert [s.number for s in volume.sessions] == [1, 2] and volume.files == 6
    assert volume.label.barcode == "FMT001L5" and volume.label.record_size == RECORD
    assert entries == first + second
    raw = Path(cartridge(library)).read_bytes()
    for entry in entries:
        data = contents[entry.path.removeprefix("share/")]
        # `offset` is the cartridge byte where the data starts.
        assert raw[entry.offset:entry.offset + entry.size] == data
        assert entry.checksum == checksum_of(data) and entry.algorithm == "xxh128"
        assert entry.mtime == (source / entry.path.removeprefix("share/")).stat().st_mtime
    again.close()


def test_reading_goes_to_the_files_in_tape_order_and_reads_little_else(library, device,
                                                                       tmp_path):
    source = tmp_path / "source"
    make_tree(source, {"big1": 600_000, "small": 100, "big2": 600_000, "last": 200})
    entries = {entry.path: entry for entry in write_session(device, source,
                                                            ["big1", "small", "big2", "last"])}

    class Counting:
        """The device, counting what is read from it."""

        def __init__(self, inner):
            self.inner, self.read_bytes = inner, 0

        def read(self, size):
            data = self.inner.read(size)
            self.read_bytes += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.inner, name)

    counting = Counting(device)
    wanted = [entries["share/last"], entries["share/small"]]
    got = [(entry.path, reader.read()) for entry, reader in
           open_in_order(counting, wanted, RECORD)]
    assert [path for path, _ in got] == ["share/small", "share/last"]  # tape order
    assert got[0][1] == (source / "small").read_bytes()
    assert got[1][1] == (source / "last").read_bytes()
    # The two big files lie between and around them: neither was read.
    assert counting.read_bytes < 3 * RECORD


# --- capacity ----------------------------------------------------------------------------------

def test_files_never_span_cartridges(library, device):
    writer = SessionWriter.open(device)
    largest = writer.largest_file()
    assert CAPACITY - 8 * RECORD < largest < CAPACITY
    with pytest.raises(FileTooLarge, match="larger than an empty cartridge") as raised:
        writer.begin_file("share/huge", CAPACITY, time.time())
    assert "never spans two cartridges" in str(raised.value)

    handle = writer.begin_file("share/one", 1_200_000, time.time())
    handle.write(b"1" * 1_200_000)
    handle.commit()
    assert not writer.fits("share/two", 1_200_000)
    with pytest.raises(CartridgeFull, match="does not fit"):
        writer.begin_file("share/two", 1_200_000, time.time())
    # What does fit still goes in; the session closes within the capacity.
    while writer.fits("share/filler", 50_000):
        handle = writer.begin_file(f"share/filler{len(writer.entries)}", 50_000, time.time())
        handle.write(b"f" * 50_000)
        handle.commit()
    session = writer.close()
    assert session.files == len(writer.entries) > 2
    assert os.path.getsize(cartridge(library)) <= CAPACITY
    listed = gnu_tar("-t", "-i", "-f", cartridge(library)).stdout.split()
    assert "share/one" in listed and "share/two" not in listed


def test_the_largest_file_fits_an_empty_cartridge_exactly(library, device):
    writer = SessionWriter.open(device)
    largest = writer.largest_file()
    name = "share/x"  # a short name: largest_file() keeps room for a pax header
    handle = writer.begin_file(name, largest, time.time())
    handle.write(b"\xab" * largest)
    handle.commit()
    writer.close()
    _, entries = read_catalog(device)
    assert [entry.size for entry in entries] == [largest]


# --- sessions cut short, files that change, formatting -------------------------------------------

def test_a_session_cut_short_is_ignored_then_written_over(library, device, tmp_path):
    source = tmp_path / "source"
    make_tree(source, {"kept": 70_000, "lost": 3_000_000 // 2})
    write_session(device, source, ["kept"])
    closed_end = os.path.getsize(cartridge(library))

    writer = SessionWriter.open(device)  # a node that dies mid-session
    handle = writer.begin_file("share/lost", 1_500_000, time.time())
    handle.write(b"L" * 1_200_000)  # past the writer's buffer: on the cartridge
    assert os.path.getsize(cartridge(library)) > closed_end

    volume = load_volume(device)  # no trailer at the end: found by scanning
    assert [s.number for s in volume.sessions] == [1] and volume.unclosed_blocks > 0
    write_session(device, source, ["kept"], prefix="again")
    volume, entries = read_catalog(device)
    assert [s.number for s in volume.sessions] == [1, 2] and volume.unclosed_blocks == 0
    assert [entry.path for entry in entries] == ["share/kept", "again/kept"]
    listed = gnu_tar("-t", "-i", "-f", cartridge(library)).stdout.split()
    assert "share/lost" not in listed


def test_a_cartridge_image_stored_as_a_file_does_not_confuse_the_reader(library, device,
                                                                         tmp_path):
    """A file on tape that is itself a tiermover cartridge holds trailers of its own."""
    source = tmp_path / "source"
    make_tree(source, {"plain": 1000})
    write_session(device, source, ["plain"])
    image = tmp_path / "image"
    image.mkdir()
    (image / "copy.tape").write_bytes(Path(cartridge(library)).read_bytes())
    write_session(device, image, ["copy.tape"])
    writer = SessionWriter.open(device)  # and a third session that never closes
    handle = writer.begin_file("share/cut", 1_200_000, time.time())
    handle.write(b"c" * 1_100_000)
    volume = load_volume(device)  # by scanning: the last record is no trailer
    assert volume.unclosed_blocks > 0
    assert [s.number for s in volume.sessions] == [1, 2]
    assert volume.sessions[1].files == 1


def test_a_file_that_changes_while_written_is_left_out(library, device):
    writer = SessionWriter.open(device)
    shrinking = writer.begin_file("share/shrinks", 10_000, time.time())
    shrinking.write(b"s" * 4_000)
    with pytest.raises(TapeError, match="shrank"):
        shrinking.commit()
    growing = writer.begin_file("share/grows", 10, time.time())
    with pytest.raises(TapeError, match="grew"):
        growing.write(b"g" * 11)
    fine = writer.begin_file("share/fine", 3, time.time())
    fine.write(b"abc")
    fine.commit()
    writer.close()
    _, entries = read_catalog(device)
    assert [entry.path for entry in entries] == ["share/fine"]
    # The archive stays whole for GNU tar (the dropped files' room is zeros).
    listed = gnu_tar("-t", "-i", "-f", cartridge(library)).stdout.split()
    assert listed[-3:] == ["share/fine", f"{META_DIR}/index-000001.json",
                           f"{META_DIR}/trailer-000001.json"]


def test_formatting_gives_a_new_labelling_and_forgets_the_data(library, device, tmp_path):
    source = tmp_path / "source"
    make_tree(source, {"a": 5000})
    write_session(device, source, ["a"])
    old = load_volume(device).label
    label = write_label(device, RECORD)
    assert label.volume_id != old.volume_id
    volume = load_volume(device)
    assert volume.sessions == [] and volume.append_block == 1
    assert os.path.getsize(cartridge(library)) == RECORD
    listed = gnu_tar("-t", "-i", "-f", cartridge(library)).stdout.split()
    assert listed == [f"{META_DIR}/label.json"]


def test_blank_foreign_and_mislabelled_cartridges(library, tmp_path):
    library.load("FMT002L5", 0)
    with library.open_drive(0, RECORD) as device:
        with pytest.raises(BlankCartridge):
            read_label(device)
        with pytest.raises(BlankCartridge):
            SessionWriter.open(device)
    library.unload(0)

    # A cartridge written by plain tar: readable, but not ours.
    (tmp_path / "x").write_text("x")
    gnu_tar("-c", "-f", cartridge(library, "FMT003L5"), "-C", str(tmp_path), "x")
    library.load("FMT003L5", 0)
    with library.open_drive(0, RECORD) as device:
        with pytest.raises(ForeignCartridge, match="another program"):
            read_label(device)
    library.unload(0)

    # Cartridge 2's bytes under cartridge 3's barcode: refused for writing.
    library.load("FMT002L5", 0)
    with library.open_drive(0, RECORD) as device:
        write_label(device, RECORD)
    library.unload(0)
    Path(cartridge(library, "FMT003L5")).write_bytes(Path(cartridge(library, "FMT002L5"))
                                                    .read_bytes())
    library.load("FMT003L5", 0)
    with library.open_drive(0, RECORD) as device:
        assert read_label(device).barcode == "FMT002L5"
        with pytest.raises(FormatError, match="carries the label of FMT002L5"):
            SessionWriter.open(device)


def test_write_protected_cartridges_are_not_written(library):
    library.set_write_protect("FMT002L5", True)
    library.load("FMT002L5", 0)
    with library.open_drive(0, RECORD) as device:
        with pytest.raises(WriteProtected):
            write_label(device, RECORD)


def test_member_names_stay_inside_the_archive(library, device):
    writer = SessionWriter.open(device)
    for bad in ("/abs", "a/../b", f"{META_DIR}/index-000009.json", "", "a//b"):
        with pytest.raises(TapeError, match="cannot be a file name"):
            writer.begin_file(bad, 1, time.time())
    assert writer.close() is None  # nothing written, nothing to close
    assert load_volume(device).sessions == []


def test_python_tarfile_reads_it_too(library, device, tmp_path):
    source = tmp_path / "source"
    contents = make_tree(source, {"one": 123, "two": 45_678})
    write_session(device, source, ["one"])
    write_session(device, source, ["two"])
    with tarfile.open(cartridge(library), ignore_zeros=True) as archive:
        got = {m.name: hashlib.sha256(archive.extractfile(m).read()).hexdigest()
               for m in archive if m.isfile() and not m.name.startswith(META_DIR)}
    assert got == {f"share/{name}": hashlib.sha256(data).hexdigest()
                   for name, data in contents.items()}

"""Writing cartridges: the label (formatting), then sessions of files appended after it.

A session is written in one pass: each file's pax header, its data as it streams in
(hashed on the way), then at close the index and the trailer. Before a file starts, the
writer checks that the file, and the index and trailer that must still follow it, fit in
what is left of the cartridge: a file never spans two cartridges, and a session can
always be closed.

Nothing written in a session is on the cartridge for sure until `close()` returned: a
session cut short has no trailer and the next one is written over it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone

from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.storage.tape.driver import TapeDevice, TapeError, WriteProtected
from tiermover.storage.tape.format import (
    BLOCK, DEFAULT_RECORD_SIZE, EOA, LABEL_NAME, MIN_RECORD_SIZE, CartridgeFull,
    FileTooLarge, FormatError, IndexEntry, Label, Session, Volume, check_member_name,
    index_name, member_header, padded, small_archive, trailer_name,
)
from tiermover.storage.tape.reader import load_volume

# Room kept for the index member's own header (a pax header when its size needs one).
INDEX_HEADER_ROOM = 3 * BLOCK
# Room for the index's fields besides its file list.
INDEX_OVERHEAD = 1024
# An entry as the fit check counts it before the real checksum is known (the longest).
CHECKSUM_ROOM = "0" * 64
FLUSH_AT = 1024 * 1024


def write_label(device: TapeDevice, record_size: int = DEFAULT_RECORD_SIZE) -> Label:
    """Format: a new label at the start of the cartridge; everything after it is gone."""
    if record_size < MIN_RECORD_SIZE or record_size % BLOCK:
        raise TapeError(f"record size {record_size} is not a multiple of {BLOCK} of at "
                        f"least {MIN_RECORD_SIZE}")
    if device.write_protected:
        raise WriteProtected(f"cartridge {device.barcode} is write-protected")
    now = time.time()
    label = Label(barcode=device.barcode, volume_id=str(uuid.uuid4()), record_size=record_size,
                  labelled_at=datetime.fromtimestamp(now, timezone.utc).isoformat())
    device.block_size = record_size
    device.rewind()
    device.write(small_archive(LABEL_NAME, label.to_json(), now, record_size))
    device.sync()
    return label


class _Records:
    """Bytes to whole records on the device, with the cartridge byte they reach."""

    def __init__(self, device: TapeDevice, start_block: int):
        self.device = device
        self.record = device.block_size
        self.start = start_block * self.record
        self.flushed = 0
        self.buffer = bytearray()

    @property
    def position(self) -> int:
        return self.start + self.flushed + len(self.buffer)

    def write(self, data) -> None:
        view = memoryview(data)
        if len(self.buffer) + len(view) < FLUSH_AT:
            self.buffer += view
            return
        # Top the buffer up to a whole record, then write whole records straight from
        # the data: large files are not copied through the buffer.
        fill = -len(self.buffer) % self.record
        self.buffer += view[:fill]
        view = view[fill:]
        if self.buffer:
            self.device.write(self.buffer)
            self.flushed += len(self.buffer)
            self.buffer.clear()
        whole = len(view) // self.record * self.record
        if whole:
            self.device.write(view[:whole])
            self.flushed += whole
        self.buffer += view[whole:]

    def finish(self) -> None:
        """Pad with zeros to a whole record and write everything out."""
        self.buffer += b"\0" * (padded(len(self.buffer), self.record) - len(self.buffer))
        if self.buffer:
            self.device.write(bytes(self.buffer))
            self.flushed += len(self.buffer)
            self.buffer.clear()


class SessionWriter:
    """Appends one session to a labelled cartridge. Not for several threads at once."""

    def __init__(self, device: TapeDevice, volume: Volume, algorithm: str = DEFAULT_ALGORITHM):
        if device.write_protected:
            raise WriteProtected(f"cartridge {device.barcode} is write-protected")
        if volume.label.barcode != device.barcode:
            raise FormatError(f"cartridge {device.barcode} carries the label of "
                              f"{volume.label.barcode}: format it first")
        self.device = device
        self.volume = volume
        self.algorithm = algorithm
        self.number = (volume.sessions[-1].number if volume.sessions else 0) + 1
        self.start_block = volume.append_block
        self.entries: list[IndexEntry] = []
        self._index_bytes = INDEX_OVERHEAD
        self._current: TapeFileWrite | None = None
        self._closed = False
        device.block_size = volume.label.record_size
        device.locate(self.start_block)
        self._out = _Records(device, self.start_block)

    @classmethod
    def open(cls, device: TapeDevice, algorithm: str = DEFAULT_ALGORITHM) -> "SessionWriter":
        return cls(device, load_volume(device), algorithm)

    # --- room ------------------------------------------------------------------------------

    def _end_after(self, position: int, index_bytes: int) -> int:
        """The cartridge byte where the session ends if it closes with its data reaching
        `position` and an index of `index_bytes`."""
        record = self.volume.label.record_size
        index_end = position + INDEX_HEADER_ROOM + padded(index_bytes) + len(EOA)
        return padded(index_end, record) + record  # + the trailer's record

    def _entry_room(self, name: str) -> int:
        sample = IndexEntry(name, "file", 2**40, time.time(), 0o7777, 2**31, 2**31, 2**50,
                            2**50, self.number, time.time(), CHECKSUM_ROOM, self.algorithm)
        return len(json.dumps(sample.to_dict(), ensure_ascii=False).encode()) + 2

    def largest_file(self) -> int:
        """The largest file an empty cartridge of this size and record size holds."""
        record = self.volume.label.record_size
        before_trailer = (self.device.capacity - record) // record * record
        usable = (before_trailer - record - INDEX_HEADER_ROOM - padded(INDEX_OVERHEAD + 512)
                  - len(EOA) - 3 * BLOCK)  # the label, the index, the file's own header
        return max(usable, 0) // BLOCK * BLOCK

    def fits(self, name: str, size: int) -> bool:
        header = len(member_header(name, size, time.time(), atime=time.time()))
        end = self._end_after(self._out.position + header + padded(size),
                              self._index_bytes + self._entry_room(name))
        return end <= self.device.capacity

    def _make_room(self, name: str, header: bytes, size: int) -> None:
        end = self._end_after(self._out.position + len(header) + padded(size),
                              self._index_bytes + self._entry_room(name))
        if end <= self.device.capacity:
            return
        record = self.volume.label.record_size
        alone = self._end_after(record + len(header) + padded(size),
                                INDEX_OVERHEAD + self._entry_room(name))
        if alone > self.device.capacity:
            raise FileTooLarge(
                f"{name} ({size} bytes) is larger than an empty cartridge holds "
                f"({self.largest_file()} bytes of data on a {self.device.capacity}-byte "
                "cartridge); a file never spans two cartridges")
        raise CartridgeFull(f"{name} ({size} bytes) does not fit in what is left of "
                            f"cartridge {self.device.barcode}")

    # --- members ---------------------------------------------------------------------------

    def begin_file(self, name: str, size: int, mtime: float, mode: int = 0o644, uid: int = 0,
                   gid: int = 0, atime: float | None = None) -> "TapeFileWrite":
        """Start a file of exactly `size` bytes. Raises CartridgeFull or FileTooLarge
        (nothing written) when it does not fit."""
        self._check_open()
        header = member_header(check_member_name(name), size, mtime, mode, uid, gid,
                               atime=atime)
        self._make_room(name, header, size)
        header_offset = self._out.position
        self._out.write(header)
        entry = IndexEntry(name, "file", size, float(mtime), mode & 0o7777, uid, gid,
                           self._out.position, header_offset, self.number, atime)
        self._current = TapeFileWrite(self, entry)
        return self._current

    def add_folder(self, name: str, mtime: float, mode: int = 0o755, uid: int = 0,
                   gid: int = 0, atime: float | None = None) -> IndexEntry:
        self._check_open()
        header = member_header(check_member_name(name), 0, mtime, mode, uid, gid,
                               folder=True, atime=atime)
        self._make_room(name, header, 0)
        header_offset = self._out.position
        self._out.write(header)
        entry = IndexEntry(name, "folder", 0, float(mtime), mode & 0o7777, uid, gid,
                           self._out.position, header_offset, self.number, atime)
        self._add_entry(entry)
        return entry

    def _add_entry(self, entry: IndexEntry) -> None:
        self.entries.append(entry)
        self._index_bytes += len(json.dumps(entry.to_dict(), ensure_ascii=False).encode()) + 2

    def _check_open(self) -> None:
        if self._closed:
            raise TapeError("this session is closed")
        if self._current is not None:
            raise TapeError(f"{self._current.entry.path} is still being written")

    # --- closing ---------------------------------------------------------------------------

    def close(self) -> Session | None:
        """Write the index and the trailer; the session is then on the cartridge. A
        session without entries writes nothing (None)."""
        self._check_open()
        self._closed = True
        if not self.entries:
            return None
        record = self.volume.label.record_size
        index = json.dumps({
            "format": "tiermover-tape", "version": 1, "volume_id": self.volume.label.volume_id,
            "barcode": self.volume.label.barcode, "session": self.number,
            "start_block": self.start_block, "record_size": record,
            "closed_at": datetime.now(timezone.utc).isoformat(),
            "files": [entry.to_dict() for entry in self.entries],
        }, ensure_ascii=False, indent=0).encode() + b"\n"
        now = time.time()
        self._out.write(member_header(index_name(self.number), len(index), int(now)))
        index_offset = self._out.position
        self._out.write(index + b"\0" * (padded(len(index)) - len(index)) + EOA)
        self._out.finish()
        trailer_block = self._out.position // record
        previous = self.volume.sessions[-1].trailer_block if self.volume.sessions else None
        session = Session(self.number, self.start_block, index_offset, len(index),
                          len(self.entries), trailer_block, previous)
        trailer = session.trailer_json(self.volume.label.volume_id)
        self.device.write(small_archive(trailer_name(self.number), trailer, now, record))
        self.device.sync()
        self.volume.sessions.append(session)
        self.volume.end_of_data = session.end_block
        self.volume.unclosed_blocks = 0
        return session


class TapeFileWrite:
    """A file's data going into the session; hashed in the same pass."""

    def __init__(self, session: SessionWriter, entry: IndexEntry):
        self.session = session
        self.entry = entry
        self.written = 0
        self._hasher = new_hasher(session.algorithm)

    def write(self, data: bytes) -> None:
        if self.written + len(data) > self.entry.size:
            self.abort()
            raise TapeError(f"{self.entry.path} grew while it was written: more than its "
                            f"{self.entry.size} bytes")
        self._hasher.update(data)
        self.session._out.write(data)
        self.written += len(data)

    def commit(self) -> IndexEntry:
        """The file is complete: it goes into the session's index."""
        if self.written != self.entry.size:
            self.abort()
            raise TapeError(f"{self.entry.path} shrank while it was written: "
                            f"{self.written} of {self.entry.size} bytes")
        self._pad()
        entry = replace(self.entry, checksum=self._hasher.hexdigest(),
                        algorithm=self.session.algorithm)
        self.session._add_entry(entry)
        return entry

    def abort(self) -> None:
        """Give the file up. Its header is already on the way, so zeros fill its declared
        size to keep the archive readable; the index does not list it."""
        if self.session._current is not self:
            return
        remaining = self.entry.size - self.written
        while remaining > 0:
            chunk = min(remaining, FLUSH_AT)
            self.session._out.write(b"\0" * chunk)
            remaining -= chunk
        self.written = self.entry.size
        self._pad()

    @property
    def checksum(self) -> str:
        return self._hasher.hexdigest()

    def _pad(self) -> None:
        self.session._out.write(b"\0" * (padded(self.entry.size) - self.entry.size))
        self.session._current = None

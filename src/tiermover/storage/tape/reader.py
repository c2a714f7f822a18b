"""Reading cartridges back without any catalog: the label, the sessions, their indexes,
and files by their offsets, in the order they lie on the tape."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator

from tiermover.storage.tape.driver import TapeDevice, TapeError
from tiermover.storage.tape.format import (
    BLOCK, LABEL_NAME, TRAILER, BlankCartridge, CartridgeStream, ForeignCartridge,
    FormatError, IndexEntry, Label, Session, Volume, _format_json, padded,
)

LABEL_MAX = 64 * 1024


def read_label(device: TapeDevice) -> Label:
    """The cartridge's label. BlankCartridge when nothing was ever written on it,
    ForeignCartridge when it holds something else."""
    device.rewind()
    first = device.read(BLOCK)
    if not first.strip(b"\0"):
        raise BlankCartridge(f"cartridge {device.barcode} is blank (never labelled)")
    try:
        header = tarfile.TarInfo.frombuf(first, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise ForeignCartridge(f"cartridge {device.barcode} does not start with a tar "
                               "header: it holds data of another program") from None
    if header.name != LABEL_NAME or not 0 < header.size <= LABEL_MAX:
        raise ForeignCartridge(f"cartridge {device.barcode} starts with {header.name!r}, "
                               f"not a {LABEL_NAME}: it holds data of another program")
    return Label.from_json(device.read(padded(header.size))[:header.size])


def load_volume(device: TapeDevice) -> Volume:
    """The label and the closed sessions. Normally two reads: the label, then the last
    record (the newest trailer) and the chain of trailers it starts; a cartridge whose
    last session was cut short is scanned header by header instead."""
    label = read_label(device)
    device.block_size = label.record_size
    end = device.end_of_data()
    volume = Volume(label, end_of_data=end)
    if end > 1:
        sessions = _chain(device, label, end - 1)
        volume.sessions = sessions if sessions is not None else _scan(device, label)
    volume.unclosed_blocks = end - volume.append_block
    return volume


def _trailer_at(device: TapeDevice, label: Label, block: int) -> Session | None:
    """The session whose trailer is the record at `block`, if it is one.

    A trailer record is [ustar header][JSON, one block][zeros]: its last non-zero block
    is the JSON and the one before it the header."""
    device.locate(block)
    record = device.read(label.record_size)
    used = len(record.rstrip(b"\0"))
    last = (used - 1) // BLOCK
    if len(record) < label.record_size or used == 0 or last < 1:
        return None
    try:
        header = tarfile.TarInfo.frombuf(record[(last - 1) * BLOCK:last * BLOCK], "utf-8",
                                         "surrogateescape")
    except tarfile.HeaderError:
        return None
    if not TRAILER.fullmatch(header.name) or not 0 < header.size <= BLOCK:
        return None
    return Session.from_trailer(record[last * BLOCK:last * BLOCK + header.size],
                                label.volume_id, block)


def _chain(device: TapeDevice, label: Label, last_block: int) -> list[Session] | None:
    """Sessions from the newest trailer back to the first; None when a link is missing."""
    sessions: list[Session] = []
    block: int | None = last_block
    while block is not None:
        session = _trailer_at(device, label, block)
        if session is None or (sessions and session.trailer_block >= sessions[0].start_block):
            return None
        sessions.insert(0, session)
        block = session.previous_trailer_block
    return sessions if sessions[0].start_block == 1 else None


def _scan(device: TapeDevice, label: Label) -> list[Session]:
    """Every closed session, found by walking the tar headers from the first session
    (jumping over file data): the recovery path when the last session has no trailer."""
    record = label.record_size
    sessions: list[Session] = []
    device.locate(1)
    stream = CartridgeStream(device)
    try:
        archive = tarfile.open(fileobj=stream, mode="r:", ignore_zeros=True)
        for member in archive:
            if not TRAILER.fullmatch(member.name) or member.offset % record \
                    or member.size > BLOCK:
                continue
            session = Session.from_trailer(archive.extractfile(member).read(),
                                           label.volume_id, member.offset // record)
            expected_start = sessions[-1].end_block if sessions else 1
            expected_previous = sessions[-1].trailer_block if sessions else None
            if session is not None and session.start_block == expected_start \
                    and session.previous_trailer_block == expected_previous:
                sessions.append(session)
    except (tarfile.TarError, TapeError, EOFError):
        pass  # the unfinished session ends mid-member: what came before stands
    return sessions


def read_index(device: TapeDevice, volume: Volume, session: Session) -> list[IndexEntry]:
    device.block_size = volume.label.record_size
    device.locate(session.index_offset // volume.label.record_size)
    stream = CartridgeStream(device)
    stream.seek(session.index_offset)
    data = stream.read(session.index_size)
    values = _format_json(data, "index")
    if values.get("volume_id") != volume.label.volume_id or \
            values.get("session") != session.number:
        raise FormatError(f"cartridge {device.barcode}: the index of session "
                          f"{session.number} belongs to another labelling or session")
    try:
        return [IndexEntry.from_dict(item, session.number) for item in values["files"]]
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"cartridge {device.barcode}: the index of session "
                          f"{session.number} is damaged ({error})") from None


def read_catalog(device: TapeDevice) -> tuple[Volume, list[IndexEntry]]:
    """Everything the cartridge says about itself: its volume and every indexed entry,
    oldest session first (a path written twice appears twice; the later one is newer)."""
    volume = load_volume(device)
    entries = [entry for session in volume.sessions
               for entry in read_index(device, volume, session)]
    return volume, entries


def open_in_order(device: TapeDevice, entries: Iterable[IndexEntry],
                  record_size: int) -> Iterator[tuple[IndexEntry, io.RawIOBase]]:
    """Each entry with a reader of exactly its data, in the order they lie on the
    cartridge, whatever order they were asked in. Reads only what is needed: short gaps
    are read through, longer ones located. Read each reader before taking the next."""
    ordered = sorted(entries, key=lambda entry: entry.offset)
    if not ordered:
        return
    device.block_size = record_size
    device.locate(ordered[0].offset // record_size)
    stream = CartridgeStream(device)
    for entry in ordered:
        stream.seek(entry.offset)
        yield entry, _Limited(stream, entry.size, entry.path)


class _Limited(io.RawIOBase):
    def __init__(self, stream: CartridgeStream, size: int, path: str):
        self.stream, self.remaining, self.path = stream, size, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self.stream.read(size)
        if size and not data:
            raise TapeError(f"{self.path}: the cartridge ends before the file does")
        self.remaining -= len(data)
        return data

"""The on-tape format: what a cartridge holds, so that GNU tar alone can read it back.

A cartridge is a run of records (`record_size` bytes, 64 KiB unless labelled otherwise):

    record 0        the label: a tar archive of one member, .tiermover-tape/label.json
    session 1       a POSIX (pax) tar archive: the files (and folders) written, then
                    .tiermover-tape/index-000001.json listing them with their byte offsets,
                    then the end-of-archive blocks, padded with zeros to a whole record
                    one record: a tar archive of one member, .tiermover-tape/trailer-000001.json,
                    saying where the session and its index start, then zeros
    session 2       the same, appended after the previous trailer
    ...

so `tar -t -i -f CARTRIDGE` lists every file of every session (`-i` reads past the zero
blocks that end each archive) and `tar -x -i` extracts them, later copies of a path over
earlier ones, the label and indexes into `.tiermover-tape/`.

Finding things without any catalog: the label says the cartridge's volume id and record
size; the last record on the cartridge is the newest trailer; each trailer names the
block of the one before it, and where its session's index is. An index lists only its
own session's files (indexes never grow with the cartridge): each file's path, type,
size, dates, mode, owner, checksum, and `offset`, the byte of the cartridge where its
data starts, which is what lets a reader go straight to a file.

A session exists once its trailer is written. A session cut short (a node that died) has
no trailer: readers ignore what follows the last trailer and the next session is written
over it.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import asdict, dataclass, field

from tiermover.storage.tape.driver import TapeDevice, TapeError

FORMAT = "tiermover-tape"
VERSION = 1
META_DIR = ".tiermover-tape"
LABEL_NAME = f"{META_DIR}/label.json"
BLOCK = tarfile.BLOCKSIZE  # 512: the unit of tar
DEFAULT_RECORD_SIZE = 64 * 1024
MIN_RECORD_SIZE = 4 * 1024  # a label or a trailer must fit one record
EOA = b"\0" * (2 * BLOCK)  # end-of-archive: two zero blocks
TRAILER = re.compile(re.escape(META_DIR) + r"/trailer-(\d{6})\.json")


def index_name(session: int) -> str:
    return f"{META_DIR}/index-{session:06d}.json"


def trailer_name(session: int) -> str:
    return f"{META_DIR}/trailer-{session:06d}.json"


def padded(size: int, unit: int = BLOCK) -> int:
    return -(-size // unit) * unit


# --- errors ----------------------------------------------------------------------------------


class FormatError(TapeError):
    """The cartridge's content is not what the format says it should be."""


class BlankCartridge(FormatError):
    """Nothing was ever written on it: it needs a label (format) first."""


class ForeignCartridge(FormatError):
    """It holds data, but not behind a tiermover label."""


class CartridgeFull(TapeError):
    """This file does not fit in what is left of the cartridge: use another one.
    Nothing of the file was written."""


class FileTooLarge(TapeError):
    """The file is larger than an empty cartridge holds; a file never spans two."""


# --- what the format records -----------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    barcode: str
    volume_id: str  # changes with every format: an index belongs to one labelling
    record_size: int
    labelled_at: str  # ISO 8601, UTC

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)},
                          indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> "Label":
        values = _format_json(data, "label")
        try:
            label = cls(str(values["barcode"]), str(values["volume_id"]),
                        int(values["record_size"]), str(values["labelled_at"]))
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(f"the label lacks {error}") from None
        if label.record_size < MIN_RECORD_SIZE or label.record_size % BLOCK:
            raise FormatError(f"the label's record size {label.record_size} is invalid")
        return label


@dataclass(frozen=True)
class IndexEntry:
    """A file or folder of a session, as its index lists it."""

    path: str  # the tar member name: no leading '/', folders without a trailing one
    type: str  # "file" | "folder"
    size: int
    mtime: float
    mode: int
    uid: int
    gid: int
    offset: int  # byte of the cartridge where the data starts
    header_offset: int  # byte where its tar header (pax header first, if any) starts
    session: int
    atime: float | None = None
    checksum: str | None = None
    algorithm: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "session"}

    @classmethod
    def from_dict(cls, values: dict, session: int) -> "IndexEntry":
        return cls(path=values["path"], type=values["type"], size=int(values["size"]),
                   mtime=float(values["mtime"]), mode=int(values["mode"]),
                   uid=int(values["uid"]), gid=int(values["gid"]),
                   offset=int(values["offset"]), header_offset=int(values["header_offset"]),
                   session=session, atime=values.get("atime"),
                   checksum=values.get("checksum"), algorithm=values.get("algorithm"))


@dataclass(frozen=True)
class Session:
    """A closed session, as its trailer describes it."""

    number: int
    start_block: int
    index_offset: int  # byte of the cartridge where the index's data starts
    index_size: int
    files: int  # entries in the index
    trailer_block: int
    previous_trailer_block: int | None

    @property
    def end_block(self) -> int:
        """Where the next session starts."""
        return self.trailer_block + 1

    def trailer_json(self, volume_id: str) -> bytes:
        body = {"format": FORMAT, "version": VERSION, "volume_id": volume_id,
                **asdict(self)}
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_trailer(cls, data: bytes, volume_id: str, block: int) -> "Session | None":
        """The session a trailer found at `block` describes, or None when it is not one
        of this labelling's trailers (file data that merely looks like one)."""
        try:
            values = _format_json(data, "trailer")
            session = cls(**{name: values[name] for name in cls.__dataclass_fields__})
        except (FormatError, KeyError, TypeError):
            return None
        if values.get("volume_id") != volume_id or session.trailer_block != block:
            return None
        return session


@dataclass
class Volume:
    """A labelled cartridge as its own records describe it."""

    label: Label
    sessions: list[Session] = field(default_factory=list)
    end_of_data: int = 1  # blocks written
    # Records after the last trailer: a session that was never closed. Ignored by
    # readers, written over by the next session.
    unclosed_blocks: int = 0

    @property
    def append_block(self) -> int:
        return self.sessions[-1].end_block if self.sessions else 1

    @property
    def files(self) -> int:
        return sum(session.files for session in self.sessions)

    def used_bytes(self) -> int:
        return self.append_block * self.label.record_size


def _format_json(data: bytes, what: str) -> dict:
    try:
        values = json.loads(data)
    except ValueError:
        raise FormatError(f"the {what} is not JSON") from None
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        raise FormatError(f"the {what} is not a {FORMAT} {what}")
    if values.get("version") != VERSION:
        raise FormatError(f"the {what} has format version {values.get('version')}, "
                          f"this reader knows {VERSION}")
    return values


# --- tar members -----------------------------------------------------------------------------


def member_header(name: str, size: int, mtime: float, mode: int = 0o644, uid: int = 0,
                  gid: int = 0, folder: bool = False, atime: float | None = None) -> bytes:
    """The pax header blocks of a member (a pax extended header first when the name,
    a fractional date or a large number needs one)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
    info.size = 0 if folder else size
    info.mtime = mtime
    info.mode = mode & 0o7777
    info.uid, info.gid = uid, gid
    if atime is not None:
        info.pax_headers = {"atime": repr(float(atime))}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def small_archive(name: str, data: bytes, mtime: float, record_size: int) -> bytes:
    """A whole archive of one member, padded with zeros to whole records."""
    # A whole-second date keeps the header one plain ustar block: readers find a
    # trailer by that shape.
    body = member_header(name, len(data), int(mtime)) + data
    body += b"\0" * (padded(len(body)) - len(body)) + EOA
    return body + b"\0" * (padded(len(body), record_size) - len(body))


def check_member_name(name: str) -> str:
    """A data member's name: relative, no '..', outside the format's own folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) \
            or parts[0] == META_DIR or "\0" in name:
        raise TapeError(f"{name!r} cannot be a file name on tape (relative, no '..', "
                        f"not under {META_DIR}/)")
    return name


# --- the cartridge as a stream of bytes ------------------------------------------------------


class CartridgeStream(io.RawIOBase):
    """The device seen as one seekable stream of bytes, for tarfile and for readers.

    Seeking forward a little reads through (cheaper on a tape than repositioning);
    further, or backwards, it locates the block and reads to the byte."""

    def __init__(self, device: TapeDevice, read_through: int | None = None):
        self.device = device
        self._record = device.block_size
        self._read_through = read_through if read_through is not None else 4 * self._record
        self._pos = device.tell() * self._record

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._end()
        offset = max(offset, 0)
        if self._pos < offset <= self._pos + self._read_through:
            self._discard(offset - self._pos)
        elif offset != self._pos:
            block = min(offset // self._record, self._end() // self._record)
            self.device.locate(block)
            self._pos = block * self._record
            self._discard(offset - self._pos)
        return self._pos

    def readinto(self, buffer) -> int:
        data = self.device.read(len(buffer))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(self._end() - self._pos, 0)
        data = self.device.read(size)
        self._pos += len(data)
        return data

    def _discard(self, count: int) -> None:
        while count > 0:
            skipped = len(self.read(min(count, 1024 * 1024)))
            if not skipped:
                break  # past the end of data: stay there
            count -= skipped

    def _end(self) -> int:
        here = self._pos
        end = self.device.end_of_data() * self._record
        self.device.locate(here // self._record)
        self._pos = (here // self._record) * self._record
        self._discard(here - self._pos)
        return end

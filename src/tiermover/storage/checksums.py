"""File checksums, computed in the same pass as the copy (the file_checksum task option)."""

from __future__ import annotations

import hashlib
import zlib
from typing import Protocol

import blake3
import xxhash

ALGORITHMS = ("md5", "sha256", "xxh64", "xxh128", "blake3", "crc32")
DEFAULT_ALGORITHM = "xxh128"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def hexdigest(self) -> str:
        return f"{self._value & 0xFFFFFFFF:08x}"


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "xxh64":
        return xxhash.xxh64()
    if algorithm == "xxh128":
        return xxhash.xxh3_128()
    if algorithm == "blake3":
        return blake3.blake3()
    if algorithm == "crc32":
        return _Crc32()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def checksum_of(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> str:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return hasher.hexdigest()

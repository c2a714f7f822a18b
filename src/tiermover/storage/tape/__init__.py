"""Tape libraries: the driver interface (driver.py), the virtual library (virtual.py), and
the on-tape format (format.py, writer.py, reader.py).

A library reaches a node as a descriptor, `{"kind": "tape_library", "protocol":
"virtual", "device": DIR}` (with `selected_drive`, a drive number, when the task chose
one); `open_library` turns it into a driver.
"""

from __future__ import annotations

import os

from tiermover.storage.tape.driver import TapeError, TapeLibraryDriver

PROTOCOLS = ("virtual",)


def open_library(descriptor: dict) -> TapeLibraryDriver:
    protocol = descriptor.get("protocol")
    if protocol == "virtual":
        from tiermover.storage.tape.virtual import VirtualLibrary

        library = VirtualLibrary(descriptor["device"])
        library.selected_drive = descriptor.get("selected_drive")
        return library
    raise TapeError(f"this node has no driver for tape libraries of protocol {protocol!r}")


def library_reachable(descriptor: dict) -> bool:
    """Whether this node can drive the library (cheap: the node asks every second)."""
    if descriptor.get("protocol") == "virtual":
        device = descriptor.get("device")
        return bool(device) and os.path.isfile(os.path.join(device, "library.json"))
    return False

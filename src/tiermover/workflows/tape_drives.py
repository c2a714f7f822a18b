"""What every tape workflow does with the cartridges it used once it is done: put them
back in their slots, or with the option eject_tape_after move them to a mail slot."""

from __future__ import annotations

from tiermover.storage.tape.driver import DRIVE, MAIL, TapeError
from tiermover.workflows.base import CatalogChange, RunContext

TRUE = ("1", "true")


def put_away(options: dict, used: dict[str, tuple[object, str]],
             context: RunContext | None = None) -> list[CatalogChange]:
    """`used`: barcode -> (library driver, the cartridge's namespace path). Returns the
    ejections, as changes of op "tape" for the server."""
    eject = (options.get("eject_tape_after") or "").lower() in TRUE
    changes = []
    for barcode, (library, path) in used.items():
        cartridge = library.inventory().cartridges.get(barcode)
        if cartridge is None or cartridge.place == MAIL:
            continue
        try:
            if cartridge.place == DRIVE:
                library.unload(cartridge.address)
            if eject:
                slot = library.export(barcode)
                changes.append(CatalogChange("tape", path, entry={"event": "ejected",
                                                                  "mail_slot": slot}))
                if context is not None:
                    context.log("info", f"{path}: ejected to mail slot {slot}")
        except TapeError as error:
            # In use by another task (which puts it away), or no free mail slot.
            if context is not None:
                context.log("warning", f"{path}: not put away: {error}")
    return changes

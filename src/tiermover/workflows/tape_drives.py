"""What tape workflows share: one item per source cartridge for those that work a whole
cartridge at a time, and, once done, putting the cartridges they used back in their
slots, or with the option eject_tape_after in a mail slot."""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.storage.tape.driver import DRIVE, MAIL, TapeError
from tiermover.workflows.base import CatalogChange, RunContext, WorkItem, Workflow

TRUE = ("1", "true")


class CartridgeWorkflow(Workflow):
    """A workflow with one work item per source cartridge (its StorageLocation)."""

    # One robot: cartridges are handled one after the other.
    default_streams = 1
    item_prefix = "cartridge"

    def option(self, name: str) -> bool:
        return self.execution.options.get(name, "").lower() in TRUE

    def plan(self) -> Iterator[WorkItem]:
        for location in self.execution.sources:
            yield WorkItem(key=f"{self.item_prefix}:{location.storage_key}:{location.path}",
                           payload=location)

    def describe(self, item: WorkItem) -> str:
        return item.payload.namespace_path


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

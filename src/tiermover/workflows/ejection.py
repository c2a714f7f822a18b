"""ejection: move cartridges to their library's mail slots (unloading them first).

An ejected cartridge is offline until it is imported again; one already in a mail slot
is left there.
"""

from __future__ import annotations

from tiermover.storage.tape.driver import DRIVE, MAIL, CartridgeNotFound
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.tape_drives import CartridgeWorkflow


class EjectionWorkflow(CartridgeWorkflow):
    item_prefix = "eject"

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        location = item.payload
        library, barcode = location.backend, location.path
        cartridge = library.inventory().cartridges.get(barcode)
        if cartridge is None:
            raise CartridgeNotFound(f"cartridge {barcode} is not in the library")
        if cartridge.place == MAIL:
            return ItemResult("done", message=f"{location.namespace_path}: already in mail "
                              f"slot {cartridge.address}")
        if cartridge.place == DRIVE:
            library.unload(cartridge.address)  # refused while a task reads or writes it
        slot = library.export(barcode)
        return ItemResult("done", message=f"{location.namespace_path}: ejected to mail slot "
                          f"{slot}", changes=[CatalogChange("tape", location.namespace_path,
                                                            entry={"event": "ejected",
                                                                   "mail_slot": slot})])

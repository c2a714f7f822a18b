"""format: give cartridges a new label, which ends whatever they held.

A cartridge that holds files (its own index lists some) or data of another program is
refused, unless the option overwrite is true. tape_to_scratch puts each formatted
cartridge in its library's scratch pool; eject_tape_after moves it to a mail slot.
"""

from __future__ import annotations

from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import BlankCartridge, ForeignCartridge, FormatError
from tiermover.storage.tape.reader import load_volume
from tiermover.storage.tape.writer import write_label
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.tape_drives import CartridgeWorkflow



def live_data(device) -> str | None:
    """What the cartridge holds that a format would end, or None."""
    try:
        volume = load_volume(device)
    except BlankCartridge:
        return None
    except ForeignCartridge:
        return "it holds data that tiermover did not write"
    except FormatError as error:
        return f"its label cannot be read ({error})"
    if volume.files:
        return (f"it holds {volume.files} files in {len(volume.sessions)} "
                f"session{'s' if len(volume.sessions) != 1 else ''}")
    return None


class FormatTapeWorkflow(CartridgeWorkflow):
    item_prefix = "format"

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        location = item.payload
        library, barcode = location.backend, location.path
        with cartridge_in_drive(library, barcode) as (drive, device):
            live = live_data(device)
            if live and not self.option("overwrite"):
                return ItemResult("skipped", warning=True, message=(
                    f"{location.namespace_path}: not formatted: {live} (the option "
                    "overwrite formats it anyway)"))
            context.checkpoint()
            label = write_label(device)
        entry = {"event": "formatted", "volume_id": label.volume_id,
                 "to_scratch": self.option("tape_to_scratch")}
        message = f"{location.namespace_path}: formatted in drive {drive}"
        if live:
            message += f", overwriting what was on it ({live})"
        changes = [CatalogChange("tape", location.namespace_path, entry=entry)]
        if self.option("eject_tape_after"):
            slot = library.export(barcode)
            message += f"; ejected to mail slot {slot}"
            changes.append(CatalogChange("tape", location.namespace_path,
                                         entry={"event": "ejected", "mail_slot": slot}))
        return ItemResult("done", message=message, changes=changes)

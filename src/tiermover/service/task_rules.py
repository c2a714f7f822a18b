"""Which workflow type, action, source type and destination type go together.

A combination that makes no sense (a format of a NAS share, a backup of a tape, a
destination for an erase) is refused with 422 naming the field, on create and update.
"""

from __future__ import annotations

from tiermover.service.errors import ValidationFailed

TAPE_ONLY = frozenset({"format", "ejection", "get_index", "rehydratation"})
# Actions that act on their sources alone: a destination means a mistake.
NO_DESTINATION = frozenset({"erase", "scan", "check_consistency", "cache_cleaning", "format",
                            "ejection", "get_index", "speedtest"})
TAPE = "secondary_tape"


def _refuse(failure: ValidationFailed, field: str, message: str, value) -> None:
    failure.add(field, "invalid", message, value=value)


def check_combination(values: dict, failure: ValidationFailed) -> None:
    """`values`: the task's workflow_type, workflow_action, source_type and
    destination_type as they will be once saved."""
    action = values.get("workflow_action")
    workflow_type = values.get("workflow_type")
    source_type = values.get("source_type")
    destination_type = values.get("destination_type")
    if action is None:
        return
    if action in TAPE_ONLY and workflow_type not in (None, "maintenance"):
        _refuse(failure, "workflow_action",
                f"{action} is a tape maintenance action: use workflow_type maintenance", action)
    if action in TAPE_ONLY and source_type not in (None, TAPE):
        _refuse(failure, "source_type", f"{action} works on tapes: source_type must be "
                f"{TAPE}", source_type)
    if action in NO_DESTINATION and destination_type is not None:
        _refuse(failure, "destination_type", f"{action} has no destination: leave "
                "destination_type empty", destination_type)
    if action == "cache_cleaning" and source_type not in (None, "container"):
        _refuse(failure, "source_type", "cache_cleaning frees a container: source_type must "
                "be container", source_type)
    if action in ("full_backup", "incremental_backup") and source_type == TAPE:
        _refuse(failure, "source_type", f"{action} backs up files from paths, not from tapes",
                source_type)
    if action == "restore" and destination_type == TAPE:
        _refuse(failure, "destination_type", "restore brings files back into a folder, not "
                "onto a tape", destination_type)

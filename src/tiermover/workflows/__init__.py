"""Workflow actions: each is a plan (the work items) plus a step run per item.

Checkpoints, pause/resume/stop, progress, bandwidth, ETA and logging come from the
framework around them (tiermover.node.runner), never from the workflows themselves.
"""

from __future__ import annotations

import importlib

# action -> "module:Class"; imported on first use so a node loads only what it runs.
ACTIONS = {
    "copy": "tiermover.workflows.copy:CopyWorkflow",
    "move": "tiermover.workflows.move:MoveWorkflow",
    "erase": "tiermover.workflows.erase:EraseWorkflow",
    "scan": "tiermover.workflows.scan:ScanWorkflow",
    # Cartridges, and copies on tapes, are read by cartridge in on-tape order.
    "check_consistency": "tiermover.workflows.tape_check:TapeCheckConsistencyWorkflow",
    "cache_cleaning": "tiermover.workflows.cache_cleaning:CacheCleaningWorkflow",
    "full_backup": "tiermover.workflows.backup:FullBackupWorkflow",
    "incremental_backup": "tiermover.workflows.backup:IncrementalBackupWorkflow",
    # Reads copies on tapes by cartridge, in on-tape order; others as RestoreWorkflow.
    "restore": "tiermover.workflows.tape_restore:TapeRestoreWorkflow",
    "speedtest": "tiermover.workflows.speedtest:SpeedtestWorkflow",
    "duplication": "tiermover.workflows.duplication:DuplicationWorkflow",
    "format": "tiermover.workflows.format_tape:FormatTapeWorkflow",
    "ejection": "tiermover.workflows.ejection:EjectionWorkflow",
    "get_index": "tiermover.workflows.get_index:GetIndexWorkflow",
    "rehydratation": "tiermover.workflows.rehydratation:RehydratationWorkflow",
}


# Actions that write to a tape or a pool of tapes when their destination is one.
TAPE_DESTINATION_ACTIONS = ("copy", "move", "full_backup", "incremental_backup", "duplication")


def workflow_class_for(action: str):
    """What makes the workflow running `action` from a plan (its Workflow class, or for
    actions that may write to tapes a function choosing by the plan's destination), or
    None when no workflow implements it."""
    target = ACTIONS.get(action)
    if target is None:
        return None
    module, name = target.split(":")
    workflow_class = getattr(importlib.import_module(module), name)
    if action in TAPE_DESTINATION_ACTIONS:
        return _choosing_tapes(workflow_class)
    return workflow_class


def _choosing_tapes(workflow_class):
    def make(plan):
        from tiermover.workflows.tape_archive import has_tape_destination, tape_variant
        from tiermover.workflows.tape_check import is_cartridge

        if has_tape_destination(plan):
            return tape_variant(workflow_class)(plan)
        if plan.action == "duplication" and any(is_cartridge(s) for s in plan.sources):
            from tiermover.workflows.tape_duplication import TapeDuplicationWorkflow

            return TapeDuplicationWorkflow(plan)
        return workflow_class(plan)
    return make

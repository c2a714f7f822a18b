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
    "check_consistency": "tiermover.workflows.check_consistency:CheckConsistencyWorkflow",
    "cache_cleaning": "tiermover.workflows.cache_cleaning:CacheCleaningWorkflow",
    "full_backup": "tiermover.workflows.backup:FullBackupWorkflow",
    "incremental_backup": "tiermover.workflows.backup:IncrementalBackupWorkflow",
    "restore": "tiermover.workflows.restore:RestoreWorkflow",
    "speedtest": "tiermover.workflows.speedtest:SpeedtestWorkflow",
    "duplication": "tiermover.workflows.duplication:DuplicationWorkflow",
    "format": "tiermover.workflows.format_tape:FormatTapeWorkflow",
    "ejection": "tiermover.workflows.ejection:EjectionWorkflow",
}


def workflow_class_for(action: str):
    """The Workflow class running `action`, or None when no workflow implements it."""
    target = ACTIONS.get(action)
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)

"""Workflow actions: each is a plan (the work items) plus a step run per item.

Checkpoints, pause/resume/stop, progress, bandwidth, ETA and logging come from the
framework around them (tiermover.node.runner), never from the workflows themselves.
"""

from __future__ import annotations

import importlib

# action -> "module:Class"; imported on first use so a node loads only what it runs.
ACTIONS = {
    "copy": "tiermover.workflows.copy:CopyWorkflow",
}


def workflow_class_for(action: str):
    """The Workflow class running `action`, or None when no workflow implements it."""
    target = ACTIONS.get(action)
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)

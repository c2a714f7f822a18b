"""Workflow actions: each is a plan (the work items) plus a step run per item.

Checkpoints, pause/resume/stop, progress, bandwidth, ETA and logging come from the
framework around them (tiermover.node.runner), never from the workflows themselves.
"""

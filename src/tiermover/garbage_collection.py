"""How the long-running processes (the server, a node) set Python's cyclic garbage
collector once they have started.

The collector traverses every container object of a generation each time it runs. The
server's heap is mostly what it built at start-up (the framework's routes and models,
SQLAlchemy's tables and compiled statements, pydantic's validators), and a node report
allocates thousands of dicts, which with the default thresholds (a young collection
every 700 allocations) started full collections over all of it: 14-15% of the server's
CPU and 8-9% of a node's during a copy of small files (`perf`, see bench/README.md).

Frozen objects are never traversed again; a larger young generation makes collections
rarer. Reference counting still frees acyclic garbage at once: only cycles wait longer.
"""

from __future__ import annotations

import gc

# A young collection every 10,000 container allocations (not 700); the older generations
# at the default ratios (every 10 of the one below; the oldest also waits until a quarter
# of its objects are new). Garbage cycles that outlive a young collection wait for the
# older ones: with (50,000, 20, 10) a scan's node grew from 75 to 96 MiB between 50,000
# and 200,000 files, where these keep it flat (bench/scan.py), for the same CPU.
THRESHOLDS = (10_000, 10, 10)


def settle_after_start() -> None:
    """Freezes what start-up built, then raises the collection thresholds. Call once the
    process has imported and built what it keeps for its lifetime."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)

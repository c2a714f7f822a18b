"""The collector settings of the long-running processes still free garbage cycles.

Run in a child interpreter: freezing the heap would change the collector of the test
process itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import gc, weakref
    from tiermover.garbage_collection import THRESHOLDS, settle_after_start

    class Node:
        pass

    kept_from_start = Node()
    settle_after_start()
    assert gc.get_freeze_count() > 0, "start-up objects were not frozen"

    # A cycle made after start-up, then dropped: reference counting alone cannot free it.
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    # Work that keeps what it allocates for a while (a report's items while it is
    # applied): the young generation fills up and is collected. (Garbage cycles count
    # towards that too: they cannot pile up beyond the threshold.)
    alive = [{"index": index} for index in range(3 * THRESHOLDS[0])]
    print("collected" if gone() is None else "still there")

    # Nothing but garbage cycles: they are collected as they pile up, never more than
    # about the young generation's threshold of them at once.
    del alive
    gc.collect()
    class Counted:
        live = 0
        def __init__(self):
            Counted.live += 1
        def __del__(self):
            Counted.live -= 1
    most = 0
    for _ in range(4 * THRESHOLDS[0]):
        first, second = Counted(), Counted()
        first.other, second.other = second, first
        most = max(most, Counted.live)
    print("bounded" if most <= 2 * THRESHOLDS[0] else f"piled up to {most}")
""")


def test_garbage_cycles_made_after_start_are_collected():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["collected", "bounded"]

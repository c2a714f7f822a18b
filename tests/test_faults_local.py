"""The faults a storage administrator meets on local and NAS storage, injected for real:
a full file system, a file the node may not read, a source changing or vanishing while
it is copied. Each must end with a log line naming the file and the cause, the right
final status, no partial file under a final name, and no source lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine_fixtures import *  # noqa: F401,F403 (engine, api, nodes, storage fixtures)
from engine_fixtures import action_task
from engine_support import (
    act, latest_execution, logs, partial_files, run_task, share_on, tree_digest, wait_task,
)

MiB = 1024 * 1024



def messages(api, execution: dict) -> list[str]:
    return [entry["msg"] for entry in logs(api, execution["id"])]


@pytest.fixture
def small_filesystem(tmp_path):
    """A 3 MiB tmpfs: a destination that fills up for real."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_destination_full_fails_the_files_that_do_not_fit_and_move_keeps_them(
        api, nodes, storage, small_filesystem):
    source, source_root, _, _ = storage
    tree = source_root / "big"
    tree.mkdir()
    for index in range(5):
        (tree / f"part-{index}.bin").write_bytes(os.urandom(MiB))
    before = tree_digest(tree)
    share = share_on(api, small_filesystem)
    nodes()
    task = action_task(api, "move", [f"/{source}/big"], [f"/{share}/out"],
                       options={"parallel_processing": 1})
    execution = run_task(api, task)
    assert execution["status"] == "finished_with_warnings", execution
    lines = messages(api, execution)
    full = [line for line in lines if "No space left on device" in line]
    assert full and all(f"/{source}/big/part-" in line for line in full), lines
    landed = small_filesystem / "out" / "big"
    assert not partial_files(small_filesystem)
    moved = {p.name for p in landed.iterdir()} if landed.exists() else set()
    assert 0 < len(moved) < 5
    # What did not fit is still at the source, untouched; what moved is whole.
    kept = {p.name for p in tree.iterdir()}
    assert kept | moved == {f"part-{i}.bin" for i in range(5)} and not kept & moved
    for name in kept:
        assert tree_digest(tree)[name] == before[name]
    for name in moved:
        assert tree_digest(landed)[name] == before[name]


def test_a_file_the_node_may_not_read_fails_alone(api, nodes, storage):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run a node without its file-access override")
    source, source_root, destination, destination_root = storage
    tree = source_root / "mixed"
    tree.mkdir()
    for index in range(4):
        (tree / f"f{index}.txt").write_text(f"file {index}\n")
    secret = tree / "f2.txt"
    secret.chmod(0)
    # As root the node would read anything: drop the capabilities that bypass modes.
    nodes(wrapper=("setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"))
    task = action_task(api, "copy", [f"/{source}/mixed"], [f"/{destination}/out"])
    execution = run_task(api, task)
    assert execution["status"] == "finished_with_warnings", execution
    lines = messages(api, execution)
    assert any(f"/{source}/mixed/f2.txt" in line and "Permission denied" in line
               for line in lines), lines
    copied = destination_root / "out" / "mixed"
    assert sorted(p.name for p in copied.iterdir()) == ["f0.txt", "f1.txt", "f3.txt"]
    assert secret.exists() and not partial_files(destination_root)


def _wait_for_partial(root: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = partial_files(root)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("the copy never started writing")


@pytest.mark.parametrize("fault", ["changes", "vanishes"])
def test_a_source_changing_or_vanishing_mid_copy_is_not_written(api, nodes, storage, fault):
    source, source_root, destination, destination_root = storage
    folder = source_root / f"live-{fault}"
    folder.mkdir()
    victim = folder / "growing.log"
    victim.write_bytes(os.urandom(6 * MiB))
    # 2 MiB/s: the copy takes about three seconds, time enough to act in the middle.
    nodes("--bwlimit", str(2 * MiB))
    task = action_task(api, "move", [f"/{source}/live-{fault}"], [f"/{destination}/out"])
    act(api, task["id"], "run")
    _wait_for_partial(destination_root)
    if fault == "changes":
        with victim.open("ab") as handle:
            handle.write(b"one more line\n")
    else:
        victim.unlink()
    wait_task(api, task["id"], timeout=60)
    execution = latest_execution(api, task["id"])
    assert execution["status"] == "finished_with_warnings", execution
    word = "changed" if fault == "changes" else "vanished"
    assert any(f"/{source}/live-{fault}/growing.log {word} while it was copied" in line
               for line in messages(api, execution)), messages(api, execution)
    assert not (destination_root / "out" / f"live-{fault}" / "growing.log").exists()
    assert not partial_files(destination_root)
    if fault == "changes":
        assert victim.stat().st_size == 6 * MiB + len(b"one more line\n")  # never deleted

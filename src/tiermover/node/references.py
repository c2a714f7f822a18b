"""Catalog records an execution works from, read page by page from the server.

Some actions act on what the catalog knows rather than on what a walk of the sources
finds: check_consistency re-reads recorded copies, cache_cleaning needs each file's
copies, incremental_backup compares with the last backup set, restore reads back a set.
The server answers `GET /nodes/{node}/executions/{execution}/references?kind=...` with
`{"references": [...], "next": <cursor or null>}`; kinds and their records:

- `copies`: every catalogued copy of the files under the execution's sources:
  `{"file", "copy", "checksum", "algorithm", "size", "verified_date"}` (namespace paths);
  a file without any copy comes once with `"copy": null`.
- `backup_files`: the files of the task's backup sets up to its last successful one,
  newest version per file: `{"file", "copy", "size", "mtime", "checksum", "algorithm"}`.
- `restore`: what a restore brings back: the newest version of every file under its
  sources, or the set of the execution named by the option execution_task_id:
  `{"file", "copy", "size", "mtime", "checksum", "algorithm"}`.
- `tape_copies`: every catalogued copy on the task's cartridges (rehydratation): `{"file",
  "copy", "size", "mtime", "checksum", "algorithm", "position"}`, by `copy`.

Records come in a stable order (by `file`), so a workflow can stream them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from tiermover.node.client import NodeClient

PAGE_SIZE = 1000
PATIENCE_SECONDS = 120.0


class CatalogReader:
    def __init__(self, client: NodeClient, node_id: int, execution_id: str):
        self.client = client
        self.node_id = node_id
        self.execution_id = execution_id

    def __call__(self, kind: str) -> Iterator[dict]:
        after: str | None = None
        while True:
            page = self.client.references(self.node_id, self.execution_id, kind, after,
                                          PAGE_SIZE,
                                          retry_until=time.monotonic() + PATIENCE_SECONDS)
            yield from page["references"]
            after = page.get("next")
            if after is None:
                return

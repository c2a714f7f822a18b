"""Short storage checks (test a share, test a connector, sync buckets) as active jobs.

The Nodeum API starts such checks with a PUT answering an ActiveJobStatus, and hands
out the result on a GET with `job_id`. Here they are quick enough to finish before the
PUT answers, so a job is only a remembered outcome. Outcomes live in memory (on the
application state): they are worth nothing after a restart.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from tiermover.service.errors import NotFound

# Enough for any client polling its own result; the oldest are forgotten first.
KEPT_JOBS = 1000


@dataclass
class Job:
    id: str
    kind: str  # "nas_share_test" | "cloud_connector_test" | "cloud_bucket_sync"
    subject_id: int | None  # the NAS or cloud connector the job ran for
    status: str  # completed | failed (ActiveJobStatus.status)
    message: str | None = None
    extra: dict = field(default_factory=dict)

    def as_status(self) -> dict:
        """ActiveJobStatus, plus the outcome message (ignored by clients that do not know it)."""
        return {"job_id": self.id, "status": self.status, "progress": 1, "total": 1,
                "message": self.message}


class JobBoard:
    def __init__(self, capacity: int = KEPT_JOBS):
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def finish(self, kind: str, subject_id: int | None, failure: str | None = None,
               **extra) -> Job:
        job = Job(uuid.uuid4().hex, kind, subject_id,
                  "failed" if failure else "completed", failure, extra)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._capacity:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str, kind: str, subject_id: int | None) -> Job:
        """The job, only when asked for on the endpoint (and object) that started it."""
        job = self._jobs.get(job_id)
        if job is None or job.kind != kind or job.subject_id != subject_id:
            raise NotFound("job", "job_id", job_id)
        return job


_board_lock = threading.Lock()


def board_for(state) -> JobBoard:
    """The job board kept on `state` (the application state), made on first use."""
    with _board_lock:
        board = getattr(state, "storage_jobs", None)
        if board is None:
            board = JobBoard()
            state.storage_jobs = board
        return board

"""All ORM models; importing this module registers every table on Base.metadata."""

from tiermover.db.models.auth import ApiKey, ApiKeyScope, Setting, User, UserSession
from tiermover.db.models.engine import (
    ActiveJob,
    ExecutionItem,
    ExecutionLog,
    ExecutionStorage,
    Node,
)
from tiermover.db.models.catalog import (
    BackupSetFile, CatalogFile, ExecutionFile, FileCopy, ImportFile,
)
from tiermover.db.models.storage import (
    CloudBucket,
    CloudConnector,
    Container,
    ContainerPrivilege,
    Nas,
    NasShare,
    Pool,
    Tape,
    TapeDrive,
    TapeLibrary,
)
from tiermover.db.models.tasks import (
    Task,
    TaskCallback,
    TaskDestination,
    TaskExecution,
    TaskMetadatum,
    TaskOption,
    TaskSchedule,
    TaskSource,
)

__all__ = [name for name in dir() if name[0].isupper()]

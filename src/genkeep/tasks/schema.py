"""The tasks table. Times are integer milliseconds since the epoch (UTC): portable, compact and cheap to index."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from genkeep.tasks.model import ROW_COLUMNS

metadata = MetaData()

UNFINISHED_SQL = "status IN ('pending', 'processing')"

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("prompt", Text, nullable=True),
    # JSON list of {"name", "width", "height", "content_type"}, in upload order.
    Column("reference_images", Text, nullable=False, server_default="[]"),
    Column("result_name", String(64), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("progress", Float, nullable=True),
    Column("engine", String(64), nullable=True),
    Column("provider_job_id", String(256), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker_id", String(64), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    # The latest preview's file name while the task is unfinished (engines that make previews).
    Column("preview_name", String(64), nullable=True),
    # JSON list of the result's notes (model.ResultNote values); NULL when it has none.
    Column("notes", String(200), nullable=True),
    # The owner's own id for a batch of tasks made together (a catalog dropped at once); NULL for a lone task.
    Column("batch", String(64), nullable=True),
    # When the task began processing (accepted, or its turn came): the timeout counts from here; NULL while it waits
    # in line (pending) behind the owner's running tasks.
    Column("processing_since", BigInteger, nullable=True),
    UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_owner_idempotency_key"),
)

# History of a type, newest first, whatever the status (status filters on history are cheap: most tasks are
# finished). Status is in no full index, so finishing a task rewrites only the small partial indexes below.
Index("ix_tasks_owner_type_created", tasks.c.owner_id, tasks.c.type, tasks.c.created_at, tasks.c.id)
# The owner's tasks across types (home page), newest first.
Index("ix_tasks_owner_created", tasks.c.owner_id, tasks.c.created_at, tasks.c.id)
# The sweeper and claiming only ever look at unfinished tasks: partial indexes stay small at any history size.
# Claiming takes the longest processing first; the sweeper fails what has processed too long.
Index("ix_tasks_unfinished_since", tasks.c.processing_since,
      sqlite_where=text(UNFINISHED_SQL), postgresql_where=text(UNFINISHED_SQL))
# Claiming: unclaimed tasks have lease 0, so "claimable" is one range scan, in claim order.
Index("ix_tasks_unfinished_lease", tasks.c.lease_expires_at, tasks.c.created_at,
      sqlite_where=text(UNFINISHED_SQL), postgresql_where=text(UNFINISHED_SQL))
# Recovery and the per-owner cap: an owner's unfinished tasks stay a handful of entries, whatever the history.
Index("ix_tasks_unfinished_owner_type_created", tasks.c.owner_id, tasks.c.type, tasks.c.created_at, tasks.c.id,
      sqlite_where=text(UNFINISHED_SQL), postgresql_where=text(UNFINISHED_SQL))

# A batch's tasks (its card, its download), only for tasks that have one.
Index("ix_tasks_owner_batch", tasks.c.owner_id, tasks.c.batch, tasks.c.created_at, tasks.c.id,
      sqlite_where=text("batch IS NOT NULL"), postgresql_where=text("batch IS NOT NULL"))

# A task's images still to be removed from the image storage: written in the transaction that deletes the task's
# row (by its owner or by retention), removed once the storage has removed them. A storage fault at that moment
# leaves the row here, and the sweeper finishes the removal later: no image outlives its task for good.
removals = Table(
    "removals",
    metadata,
    Column("task_id", String(32), primary_key=True),
    Column("recorded_at", BigInteger, nullable=False),
)

# Rows come back in the table's column order: the model reads them by these names.
assert tuple(column.name for column in tasks.c) == ROW_COLUMNS, "tasks columns and Task.from_row disagree"

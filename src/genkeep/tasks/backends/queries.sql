-- Every statement genkeep runs on the tasks table, named once and called by name.
-- Parameters are :name (psycopg's %(name)s is derived from them). `{columns}` is the tasks table's columns.
-- A statement named `name@sqlite` or `name@postgresql` replaces `name` on that database only.
-- The unfinished predicate is written out word for word as the partial indexes declare it: SQLite only uses a
-- partial index whose WHERE terms appear in the query itself.

-- get --
SELECT {columns} FROM tasks WHERE id = :id

-- get_owned --
SELECT {columns} FROM tasks WHERE id = :id AND owner_id = :owner_id

-- get_by_idempotency_key --
SELECT {columns} FROM tasks WHERE owner_id = :owner_id AND idempotency_key = :key

-- count_unfinished_of_owner --
SELECT count(*) FROM tasks WHERE owner_id = :owner_id AND status IN ('pending', 'processing')

-- count_unfinished_of_owner@sqlite --
-- Without statistics SQLite's planner would walk the owner's whole history instead of the partial index.
SELECT count(*) FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created
WHERE owner_id = :owner_id AND status IN ('pending', 'processing')

-- count_unfinished_upto --
-- The studio's unfinished tasks, counted no further than the cap: the cost is bounded by the cap, not the backlog.
SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status IN ('pending', 'processing') LIMIT :upto) AS capped

-- lock_owner@postgresql --
-- Serialises one owner's accepts for the length of the transaction, so the per-owner cap holds under concurrency.
SELECT pg_advisory_xact_lock(hashtextextended(:owner_id, 7412))

-- insert --
-- Inserts nothing when the owner already has :per_owner unfinished tasks or already used this idempotency key
-- (a NULL key matches no row): the checks and the insert in one statement, one round trip. The casts give the
-- parameters used twice one type on PostgreSQL (text in the select list, varchar in the comparisons otherwise).
INSERT INTO tasks (id, owner_id, type, status, prompt, reference_images, attempts, idempotency_key, created_at,
                   updated_at, lease_expires_at)
SELECT :id, CAST(:owner_id AS VARCHAR), :type, :status, :prompt, :reference_images, 0,
       CAST(:idempotency_key AS VARCHAR), :created_at, :updated_at, 0
WHERE (SELECT count(*) FROM tasks WHERE owner_id = :owner_id AND status IN ('pending', 'processing')) < :per_owner
  AND NOT EXISTS (SELECT 1 FROM tasks WHERE owner_id = :owner_id AND idempotency_key = :idempotency_key)

-- insert@sqlite --
-- The planner hint of count_unfinished_of_owner@sqlite.
INSERT INTO tasks (id, owner_id, type, status, prompt, reference_images, attempts, idempotency_key, created_at,
                   updated_at, lease_expires_at)
SELECT :id, CAST(:owner_id AS VARCHAR), :type, :status, :prompt, :reference_images, 0,
       CAST(:idempotency_key AS VARCHAR), :created_at, :updated_at, 0
WHERE (SELECT count(*) FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created
       WHERE owner_id = :owner_id AND status IN ('pending', 'processing')) < :per_owner
  AND NOT EXISTS (SELECT 1 FROM tasks WHERE owner_id = :owner_id AND idempotency_key = :idempotency_key)

-- delete_finished --
DELETE FROM tasks WHERE id = :id AND owner_id = :owner_id AND status IN ('completed', 'failed')

-- claim --
-- Oldest first among the claimable (never claimed: lease 0; abandoned: lease run out), so a task whose worker
-- died is taken over before newer tasks, and only while enough of its time is left to be worth starting.
UPDATE tasks
SET worker_id = :worker_id, lease_expires_at = :lease_until, attempts = attempts + 1, engine = :engine,
    updated_at = :now
WHERE id IN (
    SELECT id FROM tasks INDEXED BY ix_tasks_unfinished_created
    WHERE status IN ('pending', 'processing') AND created_at > :start_after AND lease_expires_at < :now
      AND attempts < :max_attempts AND type IN (SELECT value FROM json_each(:types))
    ORDER BY created_at LIMIT :limit)
RETURNING {columns}

-- claim@postgresql --
WITH candidates AS (
    SELECT id FROM tasks
    WHERE status IN ('pending', 'processing') AND created_at > :start_after AND lease_expires_at < :now
      AND attempts < :max_attempts AND type = ANY(:types)
    ORDER BY created_at LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE tasks
SET worker_id = :worker_id, lease_expires_at = :lease_until, attempts = tasks.attempts + 1, engine = :engine,
    updated_at = :now
FROM candidates WHERE tasks.id = candidates.id
RETURNING {tasks_columns}

-- renew --
-- One statement per held task keeps it simple for both drivers; a worker holds a handful at most.
UPDATE tasks SET lease_expires_at = :lease_until
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'
RETURNING id

-- release --
UPDATE tasks SET worker_id = NULL, lease_expires_at = 0, attempts = attempts - :refund, updated_at = :now
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- save_provider_job --
UPDATE tasks SET provider_job_id = :provider_job_id, updated_at = :now
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- set_progress --
UPDATE tasks SET progress = :progress, updated_at = :now
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- set_preview --
UPDATE tasks SET preview_name = :preview_name, progress = COALESCE(:progress, progress), updated_at = :now
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- complete --
-- Compare-and-set: a late result after a timeout, a cancel or a takeover changes nothing.
UPDATE tasks
SET status = 'completed', result_name = :result_name, progress = 1.0, finished_at = :now, updated_at = :now,
    worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE id = :id AND worker_id = :worker_id AND status IN ('pending', 'processing')

-- fail_held --
UPDATE tasks
SET status = 'failed', error_code = :code, error_message = :message, finished_at = :now, updated_at = :now,
    worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE id = :id AND worker_id = :worker_id AND status IN ('pending', 'processing')

-- fail_owned --
UPDATE tasks
SET status = 'failed', error_code = :code, error_message = :message, finished_at = :now, updated_at = :now,
    worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE id = :id AND owner_id = :owner_id AND status IN ('pending', 'processing')

-- sweep_timed_out --
UPDATE tasks
SET status = 'failed', error_code = 'timeout', error_message = :message, finished_at = :now, updated_at = :now,
    worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE status IN ('pending', 'processing') AND created_at < :created_before
RETURNING id

-- sweep_one_timed_out --
UPDATE tasks
SET status = 'failed', error_code = 'timeout', error_message = :message, finished_at = :now, updated_at = :now,
    worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE id = :id AND status IN ('pending', 'processing') AND created_at < :created_before
RETURNING id

-- sweep_exhausted --
UPDATE tasks
SET status = 'failed', error_code = 'interrupted', error_message = :message, finished_at = :now,
    updated_at = :now, worker_id = NULL, lease_expires_at = NULL, preview_name = NULL
WHERE status IN ('pending', 'processing') AND attempts >= :max_attempts AND lease_expires_at < :now
RETURNING id

-- expired_finished --
-- Retention: finished tasks older than the cut-off, a batch at a time (runs hourly; no index needed for that).
SELECT id FROM tasks WHERE status IN ('completed', 'failed') AND finished_at < :finished_before LIMIT :limit

-- delete_one_finished --
DELETE FROM tasks WHERE id = :id AND status IN ('completed', 'failed')

-- existing_ids --
SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))

-- existing_ids@postgresql --
SELECT id FROM tasks WHERE id = ANY(:ids)

-- list --
-- The owner's tasks, newest first, keyset-paged; {filters} are the optional type, status and cursor terms below.
SELECT {columns} FROM tasks WHERE owner_id = :owner_id{filters} ORDER BY created_at DESC, id DESC LIMIT :limit

-- list_filter_type --
 AND type = :type

-- list_filter_unfinished --
 AND status IN ('pending', 'processing')

-- list_filter_statuses --
 AND status IN (SELECT value FROM json_each(:statuses))

-- list_filter_statuses@postgresql --
 AND status = ANY(:statuses)

-- list_filter_cursor --
 AND (created_at < :cursor_created OR (created_at = :cursor_created AND id < :cursor_id))

-- notify@postgresql --
-- Delivered on commit: idle workers on every machine wake at once, running engines of finished tasks stop.
SELECT pg_notify('genkeep_tasks', :event)

-- get_many --
-- The tasks a sweep just finished, read back in one statement for the metrics and the transition log.
SELECT {columns} FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))

-- get_many@postgresql --
SELECT {columns} FROM tasks WHERE id = ANY(:ids)

-- unfinished_counts --
-- Metrics, read at scrape time: unfinished tasks by type, status and whether a worker holds a live lease.
SELECT type, status, lease_expires_at >= :now, count(*) FROM tasks
WHERE status IN ('pending', 'processing')
GROUP BY type, status, lease_expires_at >= :now

-- unfinished_counts@sqlite --
SELECT type, status, lease_expires_at >= :now, count(*) FROM tasks INDEXED BY ix_tasks_unfinished_lease
WHERE status IN ('pending', 'processing')
GROUP BY type, status, lease_expires_at >= :now

-- ping --
SELECT 1

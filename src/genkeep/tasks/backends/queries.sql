-- Every statement genkeep runs on the tasks table, named once and called by name.
-- Parameters are :name (psycopg's %(name)s is derived from them). `{columns}` is the tasks table's columns.
-- `{now}` is the clock that decides a task's fate (see the `now` fragment); times are integer milliseconds.
-- A statement named `name@sqlite` or `name@postgresql` replaces `name` on that database only.
-- `{unfinished}` is the unfinished predicate, word for word as the partial indexes declare it (SQLite only uses a
-- partial index whose WHERE terms appear in the query itself: the fragment is substituted before SQLite sees the
-- text); `{finished}` is what every finishing write sets besides the outcome.

-- now --
-- Not a statement: the moment a statement acts at. On SQLite the process passes its clock (one machine, one
-- clock); a test may pass any moment as :now.
:now

-- now@postgresql --
-- The database server's clock, unless :now is given (tests): machines' clocks drift, the server's does not
-- disagree with itself. statement_timestamp(), not clock_timestamp(): one moment for the whole statement (every
-- row it compares and stamps), and not now(): a transaction that waited for the owner's lock stamps when its
-- insert ran, not when it began.
COALESCE(CAST(:now AS BIGINT), floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint)

-- unfinished --
-- Not a statement: the unfinished predicate (schema.UNFINISHED_SQL, the partial indexes' WHERE).
status IN ('pending', 'processing')

-- finished --
-- Not a statement: what finishing a task sets besides its outcome (the worker, lease and preview go).
finished_at = {now}, updated_at = {now}, worker_id = NULL, lease_expires_at = NULL, preview_name = NULL

-- clock --
-- The database's now, read once a sweep: the process learns how far its own clock is off (an estimate that only
-- decides when to ask the database, never what happens to a task).
SELECT {now}

-- get --
SELECT {columns} FROM tasks WHERE id = :id

-- get_owned --
SELECT {columns} FROM tasks WHERE id = :id AND owner_id = :owner_id

-- view_owned --
-- The status poll: one of the owner's tasks as the API shows it.
SELECT {task_view} FROM tasks WHERE id = :id AND owner_id = :owner_id

-- view_many@postgresql --
-- Concurrent status polls on one event loop, answered by one round trip (see PostgresBackend.aview); the owner
-- is checked by the caller, per poll.
SELECT owner_id, {task_view} FROM tasks WHERE id = ANY(:ids)

-- list_unfinished_many@postgresql --
-- Concurrent recovery lists (an owner's unfinished tasks of one type, newest first), answered by one round trip
-- (see PostgresBackend.alist); each pair of owners[i], types[i] is one list, up to :limit tasks.
SELECT wanted.owner_id, wanted.type, listed.*
FROM unnest(CAST(:owners AS text[]), CAST(:types AS text[])) WITH ORDINALITY AS wanted(owner_id, type, place)
CROSS JOIN LATERAL (
    SELECT {task_view} FROM tasks
    WHERE tasks.owner_id = wanted.owner_id AND tasks.type = wanted.type AND {unfinished}
      AND status = ANY(:statuses)
    ORDER BY created_at DESC, id DESC LIMIT :limit) AS listed
ORDER BY wanted.place, listed.created_at DESC, listed.id DESC

-- list_of_type_many@postgresql --
-- Concurrent first pages of history (an owner's tasks of one type, newest first), answered by one round trip.
SELECT wanted.owner_id, wanted.type, listed.*
FROM unnest(CAST(:owners AS text[]), CAST(:types AS text[])) WITH ORDINALITY AS wanted(owner_id, type, place)
CROSS JOIN LATERAL (
    SELECT {task_view} FROM tasks
    WHERE tasks.owner_id = wanted.owner_id AND tasks.type = wanted.type
    ORDER BY created_at DESC, id DESC LIMIT :limit) AS listed
ORDER BY wanted.place, listed.created_at DESC, listed.id DESC

-- task_view --
-- Not a statement: the columns of a TaskView (tasks/view.py), i.e. id, status, created_at, processing_since and the
-- task's JSON
-- exactly as view.task_json builds it (the contract suite compares the two for tasks in every state), made by the
-- database so that the hot reads cost the server no Python work per task. {task} is the `shown_object` of the
-- task's keys, each written by the `shown_` fragment of how tasks/task_fields.py declares it is shown (a plain
-- column by its name); {files} is task_fields.FILES_PATH.
id, status, created_at, processing_since, {task}

-- task_view@postgresql --
id, status, created_at, processing_since, {task}::text

-- shown_object --
-- Not a statement, nor is any `shown_` fragment: how task_view writes the task's JSON. An object: {keys} are its
-- names and values, in order.
json_object({keys})

-- shown_object@postgresql --
json_build_object({keys})

-- shown_time --
-- A time column (integer milliseconds) as model.rfc3339 writes it.
strftime('%Y-%m-%dT%H:%M:%fZ', {column} / 1000.0, 'unixepoch')

-- shown_time@postgresql --
-- Integer milliseconds onto the epoch as a timestamp without time zone: exact, and UTC whatever the session.
to_char(TIMESTAMP 'epoch' + {column} * INTERVAL '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')

-- shown_list --
-- A column of JSON text holding a list; NULL (a row from before the column) is an empty list.
json(COALESCE({column}, '[]'))

-- shown_list@postgresql --
COALESCE({column}, '[]')::json

-- shown_file --
-- The URL of one of the task's files (task_fields.file_url); {name} is the SQL of its name.
'{files}' || tasks.id || '/' || {name}

-- shown_if_named --
-- {value}, a value about the file the name {column} names, or null while it names none (empty or NULL).
CASE WHEN {column} <> '' THEN {value} END

-- shown_if_named_while_unfinished --
-- The same, and only while the task is unfinished (its preview).
CASE WHEN {column} <> '' AND {unfinished} THEN {value} END

-- shown_thumbnails --
-- A picture's thumbnails (task_fields.thumbnails_json): {thumbnails} is one `shown_thumbnail` per side.
json_array({thumbnails})

-- shown_thumbnails@postgresql --
json_build_array({thumbnails})

-- shown_thumbnail --
-- {url} is the picture's URL, {suffix} what previews.thumbnail_name adds to the picture's name for this {side}.
json_object('url', {url} || '{suffix}', 'max_side', {side})

-- shown_thumbnail@postgresql --
json_build_object('url', {url} || '{suffix}', 'max_side', {side})

-- shown_error --
-- Why the task failed, from its two columns, or null while it has not.
CASE WHEN {code} <> '' THEN json_object('code', {code}, 'message', COALESCE({message}, '')) END

-- shown_error@postgresql --
CASE WHEN {code} <> '' THEN json_build_object('code', {code}, 'message', COALESCE({message}, '')) END

-- shown_entries --
-- A column of JSON text holding a list of objects (the reference images), each entry shown as {entry}, the
-- `shown_object` of its keys, which read `entry`. json(): a scalar subquery's value would otherwise lose its JSON
-- subtype and be quoted as a string. No images skip json_each (a third of the cost of a 50-task page that has
-- them).
CASE WHEN {column} = '[]' THEN json('[]')
     ELSE json((SELECT json_group_array({entry}) FROM json_each(tasks.{column}) AS entry)) END

-- shown_entries@postgresql --
-- The images are the costliest part of a task's JSON here (45 per cent of a 50-task page's, measured with
-- variants of the statement): tasks without any skip it.
CASE WHEN {column} = '[]' THEN '[]'::json
     ELSE (SELECT json_agg({entry} ORDER BY place)
           FROM json_array_elements(tasks.{column}::json) WITH ORDINALITY AS entries(entry, place)) END

-- shown_entry_value --
-- One value of an entry as stored: a number stays a number, a key an older entry lacks is null.
json_extract(entry.value, '$.{key}')

-- shown_entry_value@postgresql --
entry -> '{key}'

-- shown_entry_text --
-- One value of an entry as text, to join into a URL.
json_extract(entry.value, '$.{key}')

-- shown_entry_text@postgresql --
(entry ->> '{key}')

-- get_by_idempotency_key --
SELECT {columns} FROM tasks WHERE owner_id = :owner_id AND idempotency_key = :key

-- count_unfinished_of_owner --
SELECT count(*) FROM tasks WHERE owner_id = :owner_id AND {unfinished}

-- count_unfinished_of_owner@sqlite --
-- Without statistics SQLite's planner would walk the owner's whole history instead of the partial index.
SELECT count(*) FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created
WHERE owner_id = :owner_id AND {unfinished}

-- count_unfinished_upto --
-- The studio's unfinished tasks, counted no further than the cap: the cost is bounded by the cap, not the backlog.
SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {unfinished} LIMIT :upto) AS capped

-- lock_accepts@postgresql --
-- Serialises every accept (a new task, a retry) for the length of its transaction, on every process, so that both
-- caps hold under concurrency: a statement's count sees only the rows committed before it started.
SELECT pg_advisory_xact_lock(7412)

-- insert --
-- Inserts nothing when the owner already has :owner_cap unfinished tasks (running and waiting in line), the studio
-- :studio, or the owner already used this idempotency key (a NULL key matches no row): the checks and the insert in
-- one statement, one round trip. The new task processes at once while the owner has fewer than :per_owner
-- processing and, for a batch's task, nobody waiting in line (so a batch keeps its order); else it waits in line
-- (pending; its timeout has not started). The studio's count stops at the cap, so its cost is bounded by the cap,
-- not the backlog. The casts give the parameters used twice one type on PostgreSQL (text in the select list,
-- varchar in the comparisons otherwise).
INSERT INTO tasks (id, owner_id, type, status, prompt, reference_images, attempts, idempotency_key, batch,
                   created_at, updated_at, lease_expires_at, processing_since)
SELECT :id, CAST(:owner_id AS VARCHAR), :type, CASE WHEN owned.ready THEN 'processing' ELSE 'pending' END, :prompt,
       :reference_images, 0, CAST(:idempotency_key AS VARCHAR), CAST(:batch AS VARCHAR), {now}, {now}, 0,
       CASE WHEN owned.ready THEN {now} END
FROM ({owned}) AS owned
WHERE owned.unfinished < :owner_cap
  AND NOT EXISTS (SELECT 1 FROM tasks WHERE owner_id = :owner_id AND idempotency_key = :idempotency_key)
  AND (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {unfinished} LIMIT :studio) AS capped) < :studio
RETURNING created_at, status

-- owned --
-- Not a statement: the owner's unfinished tasks, and whether a new one may begin processing at once.
SELECT count(*) AS unfinished,
       count(CASE WHEN status = 'processing' THEN 1 END) < :per_owner
       AND (CAST(:batch AS VARCHAR) IS NULL OR count(CASE WHEN status = 'pending' THEN 1 END) = 0) AS ready
FROM tasks WHERE owner_id = :owner_id AND {unfinished}

-- owned@sqlite --
-- The planner hint of count_unfinished_of_owner@sqlite.
SELECT count(*) AS unfinished,
       count(CASE WHEN status = 'processing' THEN 1 END) < :per_owner
       AND (CAST(:batch AS VARCHAR) IS NULL OR count(CASE WHEN status = 'pending' THEN 1 END) = 0) AS ready
FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created WHERE owner_id = :owner_id AND {unfinished}

-- promote --
-- The owner's next tasks in line begin processing, as many as the owner has room to run: lone tasks first (a
-- single generation goes ahead of a catalog's waiting photos), then in order of arrival. max(0, …): SQLite reads
-- a negative LIMIT as none.
UPDATE tasks SET status = 'processing', processing_since = {now}, updated_at = {now}
WHERE status = 'pending' AND id IN (
    SELECT id FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created
    WHERE owner_id = :owner_id AND {unfinished} AND status = 'pending'
    ORDER BY batch IS NOT NULL, created_at, id
    LIMIT max(0, :per_owner - (SELECT count(*) FROM tasks INDEXED BY ix_tasks_unfinished_owner_type_created
                               WHERE owner_id = :owner_id AND {unfinished} AND status = 'processing')))
RETURNING id

-- promote@postgresql --
-- SKIP LOCKED: two tasks of one owner finishing at once each promote their own next task, not the same one.
WITH room AS (
    SELECT GREATEST(0, :per_owner - count(*)) AS free FROM tasks
    WHERE owner_id = :owner_id AND {unfinished} AND status = 'processing'),
next AS (
    SELECT id FROM tasks WHERE owner_id = :owner_id AND {unfinished} AND status = 'pending'
    ORDER BY batch IS NOT NULL, created_at, id LIMIT (SELECT free FROM room)
    FOR UPDATE SKIP LOCKED)
UPDATE tasks SET status = 'processing', processing_since = {now}, updated_at = {now}
FROM next WHERE tasks.id = next.id AND tasks.status = 'pending'
RETURNING tasks.id

-- promote_all --
-- The sweep's catch-up for every owner: tasks left waiting though their owner has room (a crash, or a fault right
-- after a task finished, skipped its owner's promote).
UPDATE tasks SET status = 'processing', processing_since = {now}, updated_at = {now}
WHERE status = 'pending' AND id IN (
    SELECT waiting.id FROM (
        SELECT id, owner_id,
               row_number() OVER (PARTITION BY owner_id ORDER BY batch IS NOT NULL, created_at, id) AS place
        FROM tasks WHERE {unfinished} AND status = 'pending') AS waiting
    LEFT JOIN (SELECT owner_id, count(*) AS running FROM tasks WHERE {unfinished} AND status = 'processing'
               GROUP BY owner_id) AS busy ON busy.owner_id = waiting.owner_id
    WHERE waiting.place <= :per_owner - COALESCE(busy.running, 0))
RETURNING id

-- delete_finished --
DELETE FROM tasks WHERE id = :id AND owner_id = :owner_id AND status IN ('completed', 'failed')

-- record_removal --
-- In the transaction that deletes the row: the task's images are due for removal even if the storage fails now.
INSERT INTO removals (task_id, recorded_at) VALUES (:id, {now})

-- pending_removals --
SELECT task_id FROM removals ORDER BY recorded_at LIMIT :limit

-- removal_done --
DELETE FROM removals WHERE task_id = :id

-- claim --
-- Longest processing first among the claimable (never claimed: lease 0; abandoned: lease run out), so a task whose
-- worker died is taken over before newer tasks, and only while enough of its time is left to be worth starting
-- (processing for less than :max_age_ms). Tasks waiting in line (pending) are not claimable.
UPDATE tasks
SET worker_id = :worker_id, lease_expires_at = {now} + :lease_ms, attempts = attempts + 1, engine = :engine,
    updated_at = {now}
WHERE id IN (
    SELECT id FROM tasks INDEXED BY ix_tasks_unfinished_since
    WHERE {unfinished} AND status = 'processing' AND processing_since > {now} - :max_age_ms
      AND lease_expires_at < {now} AND attempts < :max_attempts AND type IN (SELECT value FROM json_each(:types))
    ORDER BY processing_since LIMIT :limit)
RETURNING {columns}

-- claim@postgresql --
WITH candidates AS (
    SELECT id FROM tasks
    WHERE {unfinished} AND status = 'processing' AND processing_since > {now} - :max_age_ms
      AND lease_expires_at < {now} AND attempts < :max_attempts AND type = ANY(:types)
    ORDER BY processing_since LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE tasks
SET worker_id = :worker_id, lease_expires_at = {now} + :lease_ms, attempts = tasks.attempts + 1, engine = :engine,
    updated_at = {now}
FROM candidates WHERE tasks.id = candidates.id
RETURNING {tasks_columns}

-- renew --
-- One statement per held task keeps it simple for both drivers; a worker holds a handful at most.
UPDATE tasks SET lease_expires_at = {now} + :lease_ms
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'
RETURNING id

-- release --
UPDATE tasks SET worker_id = NULL, lease_expires_at = 0, attempts = attempts - :refund, updated_at = {now}
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'
RETURNING updated_at

-- save_provider_job --
UPDATE tasks SET provider_job_id = :provider_job_id, updated_at = {now}
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- set_progress --
UPDATE tasks SET progress = :progress, updated_at = {now}
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- set_preview --
UPDATE tasks SET preview_name = :preview_name, progress = COALESCE(:progress, progress), updated_at = {now}
WHERE id = :id AND worker_id = :worker_id AND status = 'processing'

-- complete --
-- Compare-and-set: a late result after a timeout, a cancel or a takeover changes nothing.
UPDATE tasks
SET status = 'completed', result_name = :result_name, progress = 1.0, {finished}, notes = :notes
WHERE id = :id AND worker_id = :worker_id AND {unfinished}
RETURNING updated_at

-- fail_held --
UPDATE tasks
SET status = 'failed', error_code = :code, error_message = :message, {finished}
WHERE id = :id AND worker_id = :worker_id AND {unfinished}
RETURNING updated_at

-- fail_owned --
UPDATE tasks
SET status = 'failed', error_code = :code, error_message = :message, {finished}
WHERE id = :id AND owner_id = :owner_id AND {unfinished}
RETURNING updated_at

-- sweep_timed_out --
UPDATE tasks
SET status = 'failed', error_code = 'timeout', error_message = :message, {finished}
WHERE {unfinished} AND status = 'processing' AND processing_since < {now} - :timeout_ms
RETURNING id

-- sweep_waited_too_long --
-- Tasks that waited in line longer than :wait_ms (their owner's running tasks never finished: no worker runs).
UPDATE tasks
SET status = 'failed', error_code = 'timeout', error_message = :message, {finished}
WHERE {unfinished} AND status = 'pending' AND processing_since IS NULL AND created_at < {now} - :wait_ms
RETURNING id

-- sweep_one_timed_out --
UPDATE tasks
SET status = 'failed', error_code = 'timeout', error_message = :message, {finished}
WHERE id = :id AND {unfinished} AND status = 'processing' AND processing_since < {now} - :timeout_ms
RETURNING id

-- sweep_exhausted --
UPDATE tasks
SET status = 'failed', error_code = 'interrupted', error_message = :message, {finished}
WHERE {unfinished} AND attempts >= :max_attempts AND lease_expires_at < {now}
RETURNING id

-- expired_finished --
-- Retention: tasks finished more than :retention_ms ago, a batch at a time (runs hourly; no index needed for that).
SELECT id FROM tasks WHERE status IN ('completed', 'failed') AND finished_at < {now} - :retention_ms LIMIT :limit

-- delete_one_finished --
DELETE FROM tasks WHERE id = :id AND status IN ('completed', 'failed')

-- existing_ids --
SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))

-- existing_ids@postgresql --
SELECT id FROM tasks WHERE id = ANY(:ids)

-- list --
-- The owner's tasks, newest first, keyset-paged; {filters} are the optional type, status and cursor terms below.
SELECT {task_view} FROM tasks WHERE owner_id = :owner_id{filters} ORDER BY created_at DESC, id DESC LIMIT :limit

-- list_filter_type --
 AND type = :type

-- list_filter_batch --
 AND batch = :batch

-- list_filter_unfinished --
 AND {unfinished}

-- list_filter_statuses --
 AND status IN (SELECT value FROM json_each(:statuses))

-- list_filter_statuses@postgresql --
 AND status = ANY(:statuses)

-- list_filter_cursor --
 AND (created_at < :cursor_created OR (created_at = :cursor_created AND id < :cursor_id))

-- results_of_batch --
-- A batch's completed tasks, oldest first: what its download holds.
SELECT {columns} FROM tasks WHERE owner_id = :owner_id AND batch = :batch AND status = 'completed'
ORDER BY created_at, id LIMIT :limit

-- results_of_ids --
SELECT {columns} FROM tasks
WHERE owner_id = :owner_id AND id IN (SELECT value FROM json_each(:ids)) AND status = 'completed'
ORDER BY created_at, id

-- results_of_ids@postgresql --
SELECT {columns} FROM tasks WHERE owner_id = :owner_id AND id = ANY(:ids) AND status = 'completed'
ORDER BY created_at, id

-- notify@postgresql --
-- Delivered on commit: idle workers on every machine wake at once, running engines of finished tasks stop.
-- `{channel}` is tasks/events.py's CHANNEL, the one LISTEN names too.
SELECT pg_notify('{channel}', :event)

-- get_many --
-- The tasks a sweep just finished, read back in one statement for the metrics and the transition log.
SELECT {columns} FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))

-- get_many@postgresql --
SELECT {columns} FROM tasks WHERE id = ANY(:ids)

-- unfinished_counts --
-- Metrics, read at scrape time: unfinished tasks by type, status and whether a worker holds a live lease.
SELECT type, status, lease_expires_at >= {now}, count(*) FROM tasks
WHERE {unfinished}
GROUP BY type, status, lease_expires_at >= {now}

-- unfinished_counts@sqlite --
SELECT type, status, lease_expires_at >= {now}, count(*) FROM tasks INDEXED BY ix_tasks_unfinished_lease
WHERE {unfinished}
GROUP BY type, status, lease_expires_at >= {now}

-- ping --
SELECT 1

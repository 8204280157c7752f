-- Bulk preload for `maas bench pipeline`: a user's imported history and the memories the offline
-- archivist would have made of it, written in a few statements instead of through the archivist.

-- name: bench_insert_threads
-- $1 user, $2 thread ids, $3 titles, $4 time of each thread's first message. Closed: imported
-- history that has been archived.
INSERT INTO maas.threads (id, user_id, title, created_at, last_message_at, closed_at)
SELECT t.id, $1, t.title, t.at, t.at, now()
FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS t(id, title, at)

-- name: bench_insert_messages
-- $1 user, parallel arrays $2 threads, $3 texts, $4 times. Ids are assigned in input order.
INSERT INTO maas.messages (thread_id, user_id, role, content, created_at)
SELECT m.thread_id, $1, 'user', m.content, m.at
FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS m(thread_id, content, at, n)
ORDER BY m.n
RETURNING id

-- name: bench_mark_archived
-- Every thread of user $1 archived (and passed, migration 0038) up to its last message, as after
-- the archivist ran.
UPDATE maas.threads t SET archived_upto = last.upto, consolidated_upto = last.upto
FROM (SELECT th.id AS thread,
             coalesce((SELECT max(m.id) FROM maas.messages m WHERE m.thread_id = th.id), 0) AS upto
      FROM maas.threads th WHERE th.user_id = $1) last
WHERE t.id = last.thread AND t.user_id = $1

-- name: bench_archive_pending
-- Archive jobs of user $1 not finished yet.
SELECT count(*) FROM maas.archive_jobs WHERE user_id = $1 AND status IN ('queued', 'running')

-- name: bench_archive_done
-- Finished archive jobs of user $1 and the memories they created.
SELECT count(*) AS jobs, coalesce(sum(memories_created), 0) AS memories, max(finished_at) AS last
FROM maas.archive_jobs WHERE user_id = $1 AND status = 'done'

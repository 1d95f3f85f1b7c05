-- The queue's schema: one table of jobs, one of workers, and a trigger that wakes idle
-- workers (LISTEN taskpool_jobs) when jobs are inserted, by any client.

CREATE SCHEMA IF NOT EXISTS taskpool;

CREATE TABLE taskpool.jobs (
    id            bigserial    PRIMARY KEY,
    queue         text         NOT NULL,
    kind          text         NOT NULL,
    args          jsonb        NOT NULL,
    state         text         NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'completed', 'dead', 'cancelled')),
    -- Lower runs first.
    priority      smallint     NOT NULL DEFAULT 0,
    run_at        timestamptz  NOT NULL DEFAULT now(),
    -- Counted when a worker leases the job.
    attempts      integer      NOT NULL DEFAULT 0,
    max_attempts  integer      NOT NULL DEFAULT 25 CHECK (max_attempts BETWEEN 1 AND 10000),
    unique_key    text,
    -- The lease: who runs it, and until when unless extended.
    worker_id     text,
    locked_until  timestamptz,
    last_error    text,
    -- One entry per failed, lost or given-back attempt.
    history       jsonb        NOT NULL DEFAULT '[]',
    created_at    timestamptz  NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);

-- The fetch: due pending jobs of a queue by priority, run_at, id.
CREATE INDEX jobs_fetch ON taskpool.jobs (queue, priority, run_at, id) WHERE state = 'pending';
-- The reaper: running jobs whose lease expired.
CREATE INDEX jobs_leases ON taskpool.jobs (locked_until) WHERE state = 'running';
-- Retention: finished jobs by age.
CREATE INDEX jobs_finished ON taskpool.jobs (finished_at) WHERE state IN ('completed', 'cancelled');
-- The dead set.
CREATE INDEX jobs_dead ON taskpool.jobs (kind, id) WHERE state = 'dead';
-- Unique keys hold while a job is pending or running.
CREATE UNIQUE INDEX jobs_unique ON taskpool.jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'running');

CREATE TABLE taskpool.workers (
    id            text         PRIMARY KEY DEFAULT gen_random_uuid()::text,
    queue         text         NOT NULL,
    kinds         text[]       NOT NULL,
    host          text         NOT NULL,
    pid           integer      NOT NULL,
    lease_secs    float8       NOT NULL,
    -- The last heartbeat's pool stats and job counts.
    stats         jsonb        NOT NULL DEFAULT '{}',
    started_at    timestamptz  NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz  NOT NULL DEFAULT now()
);

-- Payload: "<seconds until due>:<queue>", one per queue per statement; "0:<queue>" is due now.
CREATE FUNCTION taskpool.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskpool_jobs',
                      greatest(0, extract(epoch FROM min_run_at - now()))::text || ':' || queue)
    FROM (SELECT queue, min(run_at) AS min_run_at FROM new_jobs
          WHERE state = 'pending' GROUP BY queue) due;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON taskpool.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION taskpool.notify_jobs();

-- radroute cluster state, version 1: study-scope routing (crates/85-node/src/studies/postgres.rs).
-- Applied after the queue's migrations (study_members references instances). Times are unix
-- milliseconds (bigint) from the nodes' clocks, as in the queue.

-- One row per study with held instances. Stable when last_arrival_at is older than
-- study_stable_after_secs. Taking a stable study is a lease: owner, expiry, and a token that
-- fences the finish of a lease that was lost.
CREATE TABLE studies (
    study_instance_uid text PRIMARY KEY,
    first_seen         bigint NOT NULL,
    last_arrival_at    bigint NOT NULL,
    lease_owner        text,
    lease_expires_at   bigint,
    lease_token        bigint
);
CREATE INDEX studies_by_arrival ON studies (last_arrival_at);

CREATE SEQUENCE study_lease_tokens;
CREATE SEQUENCE study_observations;

-- One row per held instance: what processing decided for it, its vote for the study's body part.
CREATE TABLE study_members (
    instance_id        text PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    study_instance_uid text NOT NULL,
    sop_instance_uid   text NOT NULL,
    label              text,
    confidence         real,
    note               text,
    -- Destinations of instance-scope routes, sent with the study's.
    destinations       text[] NOT NULL,
    -- Indices of the study-scope routes it was deferred to (every node runs the same rules).
    deferred           integer[] NOT NULL,
    held_by            text NOT NULL,
    observed_at        bigint NOT NULL,
    -- Arrival order within the study (a re-observation moves the instance to the end).
    observed_seq       bigint NOT NULL,
    -- The lease token of the round that took it; NULL until taken.
    taken_token        bigint
);
CREATE INDEX study_members_by_study ON study_members (study_instance_uid);

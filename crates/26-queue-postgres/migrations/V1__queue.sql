-- radroute forward queue on PostgreSQL, version 1. Times are unix milliseconds (bigint), as in
-- the SQLite backend; states are text with CHECK constraints.

-- One row per radroute node of the cluster. The cluster wiring writes heartbeats; the queue
-- reads them to take over the leases and received instances of a node that stopped.
CREATE TABLE nodes (
    node_id      text PRIMARY KEY,
    started_at   bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    state        text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'draining', 'left'))
);

CREATE TABLE instances (
    id                 text PRIMARY KEY,
    sop_instance_uid   text NOT NULL,
    sop_class_uid      text NOT NULL,
    transfer_syntax    text NOT NULL,
    study_instance_uid text,
    calling_ae         text NOT NULL,
    called_ae          text NOT NULL,
    peer_addr          text NOT NULL,
    received_at        bigint NOT NULL,
    updated_at         bigint NOT NULL,
    state              text NOT NULL CHECK (state IN ('received', 'routed', 'done')),
    label              text,
    processing_note    text,
    bytes              bigint NOT NULL,
    received_by        text NOT NULL
);
CREATE INDEX instances_by_state ON instances (state, received_at, id);
CREATE INDEX instances_by_study ON instances (study_instance_uid);

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id      text NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    destination      text NOT NULL,
    state            text NOT NULL CHECK (state IN ('queued', 'in_flight', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  bigint NOT NULL,
    last_error       text,
    last_status      integer,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    priority         smallint NOT NULL DEFAULT 0,
    -- The node holding the lease while in_flight (afterwards: the last holder).
    lease_owner      text,
    -- When the lease was taken or last renewed.
    leased_at        bigint,
    -- After this the lease is void and any node may take the job over.
    lease_expires_at bigint,
    UNIQUE (instance_id, destination)
);
-- lease: due jobs of one destination in lease order.
CREATE INDEX jobs_lease_order ON jobs (destination, priority DESC, created_at, id)
    WHERE state = 'queued';
-- next_due.
CREATE INDEX jobs_next_due ON jobs (destination, next_attempt_at) WHERE state = 'queued';
-- release_stale, recover, cluster status (leases held per node).
CREATE INDEX jobs_in_flight ON jobs (lease_owner, leased_at) WHERE state = 'in_flight';
CREATE INDEX jobs_by_state ON jobs (state);

-- Instance bytes (radroute-store-postgres). One row per stored object: the incoming instance or
-- a derived (processed / header) file. The bytes live either in instance_chunks (layout 0) or in
-- one large object (layout 1, column lo). A quarantined object keeps its row and bytes, hidden.
CREATE TABLE instance_objects (
    object_id      bigserial PRIMARY KEY,
    instance_id    text        NOT NULL,
    kind           smallint    NOT NULL CHECK (kind IN (0, 1, 2)),
    bytes          bigint      NOT NULL CHECK (bytes >= 0),
    layout         smallint    NOT NULL CHECK (layout IN (0, 1)),
    lo             oid         NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    quarantined_at timestamptz NULL
);
CREATE UNIQUE INDEX instance_objects_live ON instance_objects (instance_id, kind)
    WHERE quarantined_at IS NULL;
CREATE INDEX instance_objects_kind ON instance_objects (kind, instance_id)
    WHERE quarantined_at IS NULL;

CREATE TABLE instance_chunks (
    object_id bigint  NOT NULL REFERENCES instance_objects (object_id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea   NOT NULL,
    PRIMARY KEY (object_id, seq)
);
-- Pixel data hardly compresses: store out of line without trying pglz on every chunk.
ALTER TABLE instance_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

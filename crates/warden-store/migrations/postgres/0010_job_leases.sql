-- Jobs that must run on one instance at a time (the audit retention purge): whoever holds
-- an unexpired lease runs it; a holder that dies lets its lease expire, and another takes it.
CREATE TABLE job_leases (
    name    TEXT    NOT NULL PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   BIGINT NOT NULL
);

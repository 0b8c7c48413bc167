-- Limits shared by every `serve` process (issue 13): rate-limit buckets kept in PostgreSQL,
-- API tokens with a scope, quotes marked when a newer one replaces them, and the outbox row
-- that told the owner about an approval (so that a newer estimate replaces an unsent notice
-- instead of queueing another).
--
-- "RateLimit" is new. The other tables get nullable columns or a column with a constant
-- default (catalog-only changes), and a CHECK added NOT VALID (migration 18 validates it
-- online): nothing scans a table under a lock.

CREATE TABLE "RateLimit" (
    key text NOT NULL,
    -- GCRA's theoretical arrival time: the bucket is full again at `tat`; a request is let in
    -- while `tat - now()` is within the burst the limit allows.
    tat timestamptz NOT NULL,
    CONSTRAINT "RateLimit_pkey" PRIMARY KEY (key)
);
CREATE INDEX "RateLimit_tat_idx" ON "RateLimit" (tat);

ALTER TABLE "ApiToken" ADD COLUMN scope text NOT NULL DEFAULT 'api';
ALTER TABLE "ApiToken" ADD CONSTRAINT "ApiToken_scope_check"
    CHECK (scope IN ('api', 'calendar')) NOT VALID;

ALTER TABLE "Quote" ADD COLUMN superseded_at timestamptz;

-- No foreign key: a delivered notice may be purged from the outbox; the approval stays.
ALTER TABLE "Approval" ADD COLUMN notice_id uuid;

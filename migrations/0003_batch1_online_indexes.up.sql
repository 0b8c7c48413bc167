-- junkquote:no-transaction
--
-- The slow half of Batch 1, done online: indexes on the existing (possibly large) tables built
-- CONCURRENTLY, and the NOT VALID foreign keys of migration 2 validated, which scans "Lead" and
-- "Job" without blocking their writers. Each statement runs on its own; an index left invalid by
-- an interrupted build is dropped and rebuilt when the migration is run again.

DROP INDEX CONCURRENTLY IF EXISTS "Lead_customer_id_idx";
CREATE INDEX CONCURRENTLY "Lead_customer_id_idx" ON "Lead" (customer_id);

DROP INDEX CONCURRENTLY IF EXISTS "Job_customer_id_idx";
CREATE INDEX CONCURRENTLY "Job_customer_id_idx" ON "Job" (customer_id);

-- The original's foreign keys had no indexes: every lead's quotes, jobs and audit trail was a
-- sequential scan, and deleting a lead scanned each child table.
DROP INDEX CONCURRENTLY IF EXISTS "Quote_lead_id_idx";
CREATE INDEX CONCURRENTLY "Quote_lead_id_idx" ON "Quote" (lead_id);

DROP INDEX CONCURRENTLY IF EXISTS "Job_lead_id_idx";
CREATE INDEX CONCURRENTLY "Job_lead_id_idx" ON "Job" (lead_id);

DROP INDEX CONCURRENTLY IF EXISTS "Approval_quote_id_idx";
CREATE INDEX CONCURRENTLY "Approval_quote_id_idx" ON "Approval" (quote_id);

DROP INDEX CONCURRENTLY IF EXISTS "Audit_lead_id_created_at_idx";
CREATE INDEX CONCURRENTLY "Audit_lead_id_created_at_idx" ON "Audit" (lead_id, created_at);

ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_fkey";
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_fkey";

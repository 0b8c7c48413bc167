-- junkquote:no-transaction
-- junkquote:requires-check leads-and-jobs-linked
--
-- After the backfill every lead and job has its customer: make that a rule. Online, each
-- statement on its own with the runner's lock_timeout: a CHECK added NOT VALID (a brief lock, no
-- scan), validated (a scan that blocks no writer), then SET NOT NULL, which PostgreSQL proves
-- from the validated CHECK without a second scan, then the CHECK goes. The foreign keys become
-- RESTRICT the same way: a second key added NOT VALID, validated, the old one dropped, the new
-- one renamed. Every statement is safe to run again after an interruption.
--
-- `junkquote migrate up` and `serve` apply this only when the pre-check finds every lead and
-- job linked (always so on a fresh database); on a database adopted from the original they stop
-- before it until `junkquote backfill` and `junkquote tighten` have run.

ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_not_null";
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_not_null"
    CHECK (customer_id IS NOT NULL) NOT VALID;
ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_not_null";
ALTER TABLE "Lead" ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE "Lead" DROP CONSTRAINT "Lead_customer_id_not_null";

ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_not_null";
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_not_null"
    CHECK (customer_id IS NOT NULL) NOT VALID;
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_not_null";
ALTER TABLE "Job" ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE "Job" DROP CONSTRAINT "Job_customer_id_not_null";

-- A customer with leads or jobs can no longer be deleted by accident (SET NULL would now fail
-- anyway, on the NOT NULL column): erasure removes them explicitly first.
ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_restrict_fkey";
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_restrict_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_restrict_fkey";
ALTER TABLE "Lead" DROP CONSTRAINT "Lead_customer_id_fkey";
ALTER TABLE "Lead" RENAME CONSTRAINT "Lead_customer_id_restrict_fkey" TO "Lead_customer_id_fkey";

ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_restrict_fkey";
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_restrict_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_restrict_fkey";
ALTER TABLE "Job" DROP CONSTRAINT "Job_customer_id_fkey";
ALTER TABLE "Job" RENAME CONSTRAINT "Job_customer_id_restrict_fkey" TO "Job_customer_id_fkey";

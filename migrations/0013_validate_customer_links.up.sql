-- junkquote:no-transaction
-- junkquote:requires-check leads-and-jobs-linked
--
-- Migration 12's rules, validated online: each VALIDATE scans its table under a lock that lets
-- writers go on; SET NOT NULL then takes its brief lock and, finding the validated CHECK, skips
-- the scan; the CHECK, now redundant, goes. Each statement runs on its own and is safe to run
-- again after an interruption.

ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_fkey";
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_fkey";

ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_not_null";
ALTER TABLE "Lead" ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_not_null";

ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_not_null";
ALTER TABLE "Job" ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_not_null";

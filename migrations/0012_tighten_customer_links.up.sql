-- junkquote:requires-check leads-and-jobs-linked
--
-- After the backfill every lead and job has its customer: make that a rule, in two steps so
-- that no table is scanned under a lock that blocks writers. This step (one short transaction)
-- adds the rules without checking existing rows: a CHECK (customer_id IS NOT NULL) on "Lead" and
-- "Job" and, in place of the SET NULL foreign keys, RESTRICT ones (a customer with leads or jobs
-- cannot be deleted by accident), all NOT VALID. Migration 13 then validates them online.
--
-- The three tables are locked first, each in the strongest mode needed, in the order the
-- service writes them ("Customer", then "Lead", then "Job"): a foreign key locks both its
-- tables, and taking "Lead" before "Customer" while the service inserts a customer and then its
-- lead is a deadlock, whose victim may be the service's write. Nothing here scans a table, so
-- the locks last milliseconds; the runner's lock_timeout (`tighten` uses 0.5 s, under
-- PostgreSQL's 1 s deadlock_timeout, so that in any lock cycle this transaction gives up first)
-- bounds the wait, and the transaction is retried.
--
-- `junkquote migrate up` and `serve` apply this only when the pre-check finds every lead and job
-- linked (always so on a fresh database); on a database adopted from the original they stop
-- before it until `junkquote backfill` and `junkquote tighten` have run.

LOCK TABLE "Customer", "Lead", "Job" IN ACCESS EXCLUSIVE MODE;

ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_not_null"
    CHECK (customer_id IS NOT NULL) NOT VALID;
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_not_null"
    CHECK (customer_id IS NOT NULL) NOT VALID;

ALTER TABLE "Lead" DROP CONSTRAINT "Lead_customer_id_fkey";
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE "Job" DROP CONSTRAINT "Job_customer_id_fkey";
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE RESTRICT NOT VALID;

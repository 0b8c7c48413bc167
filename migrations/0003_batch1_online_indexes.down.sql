-- junkquote:no-transaction
--
-- Back to migration 2: the indexes go (concurrently) and the customer foreign keys are NOT VALID
-- again, as migration 2 left them.

ALTER TABLE "Job" DROP CONSTRAINT "Job_customer_id_fkey",
    ADD CONSTRAINT "Job_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE "Lead" DROP CONSTRAINT "Lead_customer_id_fkey",
    ADD CONSTRAINT "Lead_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;

DROP INDEX CONCURRENTLY IF EXISTS "Audit_lead_id_created_at_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Approval_quote_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Job_lead_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Quote_lead_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Job_customer_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Lead_customer_id_idx";

-- junkquote:no-transaction
--
-- Back to migration 11: no CHECKs, and the SET NULL foreign keys again, validated online (their
-- own statements, so the scan blocks no writer); safe to re-run.

ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_not_null";
ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_not_null";

ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_setnull_fkey";
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_setnull_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_setnull_fkey";
ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_fkey";
ALTER TABLE "Job" RENAME CONSTRAINT "Job_customer_id_setnull_fkey" TO "Job_customer_id_fkey";

ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_setnull_fkey";
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_setnull_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_setnull_fkey";
ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_fkey";
ALTER TABLE "Lead" RENAME CONSTRAINT "Lead_customer_id_setnull_fkey" TO "Lead_customer_id_fkey";

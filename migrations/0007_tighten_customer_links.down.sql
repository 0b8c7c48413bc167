-- junkquote:no-transaction
--
-- Back to migration 6: the links nullable again and SET NULL on delete, online and re-runnable
-- like the way up.

ALTER TABLE "Job" DROP CONSTRAINT IF EXISTS "Job_customer_id_setnull_fkey";
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_setnull_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE "Job" VALIDATE CONSTRAINT "Job_customer_id_setnull_fkey";
ALTER TABLE "Job" DROP CONSTRAINT "Job_customer_id_fkey";
ALTER TABLE "Job" RENAME CONSTRAINT "Job_customer_id_setnull_fkey" TO "Job_customer_id_fkey";

ALTER TABLE "Lead" DROP CONSTRAINT IF EXISTS "Lead_customer_id_setnull_fkey";
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_setnull_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE "Lead" VALIDATE CONSTRAINT "Lead_customer_id_setnull_fkey";
ALTER TABLE "Lead" DROP CONSTRAINT "Lead_customer_id_fkey";
ALTER TABLE "Lead" RENAME CONSTRAINT "Lead_customer_id_setnull_fkey" TO "Lead_customer_id_fkey";

ALTER TABLE "Job" ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE "Lead" ALTER COLUMN customer_id DROP NOT NULL;

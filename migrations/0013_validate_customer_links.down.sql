-- Back to migration 12: the links nullable, their rules present but not validated. One short
-- transaction, the tables locked in the order the service writes them (see migration 12).

LOCK TABLE "Customer", "Lead", "Job" IN ACCESS EXCLUSIVE MODE;

ALTER TABLE "Lead" ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE "Job" ALTER COLUMN customer_id DROP NOT NULL;
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

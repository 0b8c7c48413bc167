-- junkquote:no-transaction
--
-- Back to migration 13: plain lookup indexes again, no shape checks.

DROP INDEX CONCURRENTLY IF EXISTS "Customer_email_idx";
CREATE INDEX CONCURRENTLY "Customer_email_idx" ON "Customer" (email);
DROP INDEX CONCURRENTLY IF EXISTS "Customer_email_key";

DROP INDEX CONCURRENTLY IF EXISTS "Customer_phone_idx";
CREATE INDEX CONCURRENTLY "Customer_phone_idx" ON "Customer" (phone);
DROP INDEX CONCURRENTLY IF EXISTS "Customer_phone_key";

ALTER TABLE "Customer" DROP CONSTRAINT IF EXISTS "Customer_email_normalised_check";
ALTER TABLE "Customer" DROP CONSTRAINT IF EXISTS "Customer_phone_e164_check";

-- junkquote:no-transaction
-- junkquote:requires-check customer-phone-email-unique
--
-- One customer per phone number and per email address, in their normalised forms (E.164;
-- trimmed and lower-case), so that a returning customer is always found. The unique indexes are
-- built CONCURRENTLY (writers go on); they replace the plain lookup indexes of Batch 1, which
-- they make redundant. The shape checks are added NOT VALID and validated without blocking
-- writers. An index left invalid by an interrupted build is dropped and rebuilt on a re-run.
--
-- Applied by `migrate up` and `serve` only once the pre-check finds no duplicate and no
-- unnormalised value (see `junkquote tighten`).

ALTER TABLE "Customer" DROP CONSTRAINT IF EXISTS "Customer_phone_e164_check";
ALTER TABLE "Customer" ADD CONSTRAINT "Customer_phone_e164_check"
    CHECK (phone ~ '^\+[1-9][0-9]{6,14}$') NOT VALID;
ALTER TABLE "Customer" VALIDATE CONSTRAINT "Customer_phone_e164_check";

ALTER TABLE "Customer" DROP CONSTRAINT IF EXISTS "Customer_email_normalised_check";
ALTER TABLE "Customer" ADD CONSTRAINT "Customer_email_normalised_check"
    CHECK (email = lower(btrim(email))) NOT VALID;
ALTER TABLE "Customer" VALIDATE CONSTRAINT "Customer_email_normalised_check";

DROP INDEX CONCURRENTLY IF EXISTS "Customer_phone_key";
CREATE UNIQUE INDEX CONCURRENTLY "Customer_phone_key" ON "Customer" (phone);
DROP INDEX CONCURRENTLY IF EXISTS "Customer_phone_idx";

DROP INDEX CONCURRENTLY IF EXISTS "Customer_email_key";
CREATE UNIQUE INDEX CONCURRENTLY "Customer_email_key" ON "Customer" (email);
DROP INDEX CONCURRENTLY IF EXISTS "Customer_email_idx";

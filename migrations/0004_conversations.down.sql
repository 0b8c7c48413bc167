-- Back to migration 3. PostgreSQL cannot drop an enum value, so "Channel" is rebuilt without
-- 'web'; that rewrites "Lead" and "Conversation" under a lock, acceptable for a rollback and
-- refused while any web-chat lead or conversation exists.

ALTER TABLE "Config" DROP COLUMN hours;
ALTER TABLE "Config" DROP COLUMN paused;

ALTER TABLE "Approval" DROP COLUMN expires_at;

DROP TABLE "ApiToken";
DROP TABLE "ChatSession";
DROP TABLE "Booking";
DROP TABLE "Outbox";
DROP TABLE "InboundMessage";

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM "Lead" WHERE channel::text = 'web')
        OR EXISTS (SELECT 1 FROM "Conversation" WHERE channel::text = 'web') THEN
        RAISE EXCEPTION 'web-chat leads or conversations exist; erase them before reverting migration 4';
    END IF;
END
$$;

ALTER TYPE "Channel" RENAME TO "Channel_with_web";
CREATE TYPE "Channel" AS ENUM ('messenger', 'sms');
-- squawk-ignore changing-column-type
ALTER TABLE "Lead" ALTER COLUMN channel TYPE "Channel" USING channel::text::"Channel";
-- squawk-ignore changing-column-type
ALTER TABLE "Conversation" ALTER COLUMN channel TYPE "Channel" USING channel::text::"Channel";
DROP TYPE "Channel_with_web";

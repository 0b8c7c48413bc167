-- junkquote:no-transaction
--
-- Back to migration 14.

DROP INDEX CONCURRENTLY IF EXISTS "Conversation_one_open_per_lead_key";
ALTER TABLE "Conversation" DROP COLUMN IF EXISTS closed_at;

-- junkquote:no-transaction
-- junkquote:requires-check one-open-conversation-per-lead
--
-- A conversation can be closed (`closed_at`), and a lead has at most one open conversation: a
-- partial unique index, built CONCURRENTLY. The new column is nullable without a default (a
-- catalog-only change). Safe to re-run.
--
-- Applied by `migrate up` and `serve` only once the pre-check finds no lead with two open
-- conversations (see `junkquote tighten`).

ALTER TABLE "Conversation" ADD COLUMN IF NOT EXISTS closed_at timestamptz;

DROP INDEX CONCURRENTLY IF EXISTS "Conversation_one_open_per_lead_key";
CREATE UNIQUE INDEX CONCURRENTLY "Conversation_one_open_per_lead_key" ON "Conversation" (lead_id)
    WHERE closed_at IS NULL;

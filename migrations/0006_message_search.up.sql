-- junkquote:no-transaction
--
-- Full-text search over what customers and the assistant wrote, built online: "Message" may
-- already hold millions of rows. An index left invalid by an interrupted build is dropped and
-- rebuilt when the migration is run again.

DROP INDEX CONCURRENTLY IF EXISTS "Message_content_search_idx";
CREATE INDEX CONCURRENTLY "Message_content_search_idx" ON "Message"
    USING gin (to_tsvector('english'::regconfig, content));

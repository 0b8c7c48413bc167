-- junkquote:no-transaction
--
-- Back to migration 5.

DROP INDEX CONCURRENTLY IF EXISTS "Message_content_search_idx";

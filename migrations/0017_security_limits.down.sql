-- Back to the schema before migration 17.

ALTER TABLE "Approval" DROP COLUMN notice_id;
ALTER TABLE "Quote" DROP COLUMN superseded_at;
ALTER TABLE "ApiToken" DROP CONSTRAINT "ApiToken_scope_check";
ALTER TABLE "ApiToken" DROP COLUMN scope;
DROP TABLE "RateLimit";

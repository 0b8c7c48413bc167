-- junkquote:no-transaction
--
-- Back to migration 17: the CHECK not validated. Safe to run again.

ALTER TABLE "ApiToken" DROP CONSTRAINT IF EXISTS "ApiToken_scope_check";
ALTER TABLE "ApiToken" ADD CONSTRAINT "ApiToken_scope_check"
    CHECK (scope IN ('api', 'calendar')) NOT VALID;

-- junkquote:no-transaction
--
-- Migration 17's token-scope CHECK, validated online (the scan lets writers go on). Safe to
-- run again.

ALTER TABLE "ApiToken" VALIDATE CONSTRAINT "ApiToken_scope_check";

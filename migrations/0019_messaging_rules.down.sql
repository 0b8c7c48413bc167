-- Back to the schema before migration 19: no opt-outs, no quiet-hours hold, no messaging settings.

ALTER TABLE "Config" DROP COLUMN IF EXISTS messaging;
ALTER TABLE "Outbox" DROP COLUMN IF EXISTS sent_by;
ALTER TABLE "Outbox" DROP COLUMN IF EXISTS quiet_until;
DROP TABLE IF EXISTS "OptOut";

-- Back to migration 15: codes limited per conversation only.

ALTER TABLE "IdentityChallenge" DROP COLUMN outbox_id;
DROP TABLE "IdentityLimit";

-- Back to the legacy schema: the seven Batch 1 tables, their enum and the two customer links go.

ALTER TABLE "Job" DROP COLUMN customer_id;
ALTER TABLE "Lead" DROP COLUMN customer_id;

DROP TABLE "JobEvent";
DROP TABLE "JobItem";
DROP TABLE "MemoryNote";
DROP TABLE "Message";
DROP TABLE "Conversation";
DROP TABLE "CustomerAddress";
DROP TABLE "Customer";

DROP TYPE "MessageRole";

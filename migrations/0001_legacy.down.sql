-- Removes the legacy schema: an empty `public` again.

DROP TABLE "CalendarSyncState";
DROP TABLE "Config";
DROP TABLE "LeadAttachment";
DROP TABLE "Audit";
DROP TABLE "Approval";
DROP TABLE "Job";
DROP TABLE "Quote";
DROP TABLE "Lead";

DROP TYPE "ApprovalStatus";
DROP TYPE "JobStatus";
DROP TYPE "QuoteStatus";
DROP TYPE "LeadStage";
DROP TYPE "Channel";

-- Back to the schema before migration 20: no answering leases.

DROP TABLE IF EXISTS "AnswerLease";

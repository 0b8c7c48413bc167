-- Answering leases (DESIGN §4): which worker is answering a conversation, until when.
--
-- A worker (in any `serve` process) takes a conversation's lease before answering its messages
-- and renews it while it works, so that each conversation is answered one message at a time and
-- in order without a row lock held on a connection while a model thinks. A lease whose
-- `expires_at` has passed (its worker died) may be taken by anyone. A released lease is deleted.
-- No foreign key: a lease outlives nothing (it is deleted when released, and an orphan of a
-- deleted conversation is never taken again), and a key would lock "Conversation" to build.
--
-- A new table: nothing existing is locked.

CREATE TABLE "AnswerLease" (
    conversation_id uuid NOT NULL,
    holder uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT "AnswerLease_pkey" PRIMARY KEY (conversation_id)
);

-- One-time codes are limited per identity, whatever conversation or chat session asks for them:
-- codes sent to one phone or email a day, and wrong codes tried against one identity a day
-- (after which it is locked until its day is over). "IdentityLimit" holds the counters, one row
-- per identity touched in the last day, keyed by the SHA-256 of the identity rather than the
-- number or address itself; a row whose day is over is deleted.
--
-- "IdentityChallenge".outbox_id is the code text's outbox row until the code expires and the
-- text's body is redacted, so that the database keeps no usable code.
--
-- A new table, and a nullable column without a default (a catalog-only change under a brief
-- lock, bounded by the runner's lock_timeout).

CREATE TABLE "IdentityLimit" (
    identity_hash text NOT NULL,
    window_start timestamptz NOT NULL DEFAULT now(),
    codes integer NOT NULL DEFAULT 0,
    wrong integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    CONSTRAINT "IdentityLimit_pkey" PRIMARY KEY (identity_hash)
);

ALTER TABLE "IdentityChallenge" ADD COLUMN outbox_id uuid;

-- The messaging rules (DESIGN §4): who has opted out, and what the outbox needs to keep them.
--
-- "OptOut" holds one row per recipient (an SMS number or a Messenger PSID) that asked not to
-- be messaged, with the reason (a carrier keyword, a revocation in words, the carrier's
-- 21610 refusal) and the one confirmation that may still go out; START deletes it.
-- "Outbox".quiet_until is when a message JunkQuote sends first was held for the recipient's
-- quiet hours (it does not keep the recipient's later replies waiting); "Outbox".sent_by is the
-- console user who wrote a message (null for the assistant), since only a person's reply may
-- use Messenger's HUMAN_AGENT tag. "Config".messaging holds the rules' settings.
--
-- The new table is new, and the new columns are nullable without a default: catalog-only
-- changes that lock nothing for long.

CREATE TABLE "OptOut" (
    channel text NOT NULL,
    recipient text NOT NULL,
    reason text NOT NULL,
    confirmation_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "OptOut_pkey" PRIMARY KEY (channel, recipient)
);

ALTER TABLE "Outbox" ADD COLUMN quiet_until timestamptz;
ALTER TABLE "Outbox" ADD COLUMN sent_by text;
ALTER TABLE "Config" ADD COLUMN messaging jsonb;

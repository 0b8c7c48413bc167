-- The quoting conversation: web chat as a channel, inbound deliveries recorded once and
-- processed in order, a durable outbox for replies, bookings that cannot overlap, web-chat
-- sessions, API tokens, approvals that expire, and the company's settings. New tables, and
-- nullable (or constant-default) columns on existing ones: catalog-only changes.

ALTER TYPE "Channel" ADD VALUE IF NOT EXISTS 'web';

-- Every inbound message, keyed by its provider's id (Twilio MessageSid, Messenger mid, a web
-- chat id), so a retried delivery is recognised; `seq` orders a conversation's messages by
-- arrival, `processed_at` marks those the agent has answered, and a failed answer is retried
-- at `retry_at` (after `attempts` tries it is set aside with `last_error`).
CREATE TABLE "InboundMessage" (
    provider text NOT NULL,
    provider_message_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    conversation_id uuid NOT NULL,
    message_id uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    retry_at timestamptz,
    CONSTRAINT "InboundMessage_pkey" PRIMARY KEY (provider, provider_message_id),
    CONSTRAINT "InboundMessage_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE CASCADE,
    CONSTRAINT "InboundMessage_message_id_fkey" FOREIGN KEY (message_id)
        REFERENCES "Message" (id) ON DELETE CASCADE
);
CREATE INDEX "InboundMessage_conversation_id_seq_idx" ON "InboundMessage" (conversation_id, seq);
CREATE INDEX "InboundMessage_message_id_idx" ON "InboundMessage" (message_id);
CREATE INDEX "InboundMessage_unprocessed_idx" ON "InboundMessage" (received_at)
    WHERE processed_at IS NULL;

-- Replies and notifications waiting to be sent, claimed by workers with SKIP LOCKED, retried
-- with backoff, and sent to each recipient in `seq` order; `kind` tells a reply from an
-- unprompted update; `dedupe_key` makes a notification impossible to queue twice.
CREATE TABLE "Outbox" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    seq bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL DEFAULT 'reply',
    conversation_id uuid,
    message_id uuid,
    channel text NOT NULL,
    recipient text NOT NULL,
    body text NOT NULL,
    dedupe_key text,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    provider_message_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    CONSTRAINT "Outbox_pkey" PRIMARY KEY (id),
    CONSTRAINT "Outbox_status_check" CHECK (status IN ('pending', 'sent', 'failed', 'held')),
    CONSTRAINT "Outbox_kind_check" CHECK (kind IN ('reply', 'update')),
    CONSTRAINT "Outbox_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE CASCADE,
    CONSTRAINT "Outbox_message_id_fkey" FOREIGN KEY (message_id)
        REFERENCES "Message" (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX "Outbox_dedupe_key_key" ON "Outbox" (dedupe_key);
CREATE INDEX "Outbox_conversation_id_idx" ON "Outbox" (conversation_id);
CREATE INDEX "Outbox_message_id_idx" ON "Outbox" (message_id);
CREATE INDEX "Outbox_due_idx" ON "Outbox" (next_attempt_at) WHERE status = 'pending';
CREATE INDEX "Outbox_recipient_seq_idx" ON "Outbox" (recipient, seq) WHERE status = 'pending';

-- A booked job's crew time. The exclusion constraint makes two bookings of the same crew at
-- overlapping times impossible, whatever races the application loses.
CREATE TABLE "Booking" (
    job_id uuid NOT NULL,
    crew integer NOT NULL DEFAULT 1,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Booking_pkey" PRIMARY KEY (job_id),
    CONSTRAINT "Booking_job_id_fkey" FOREIGN KEY (job_id) REFERENCES "Job" (id) ON DELETE CASCADE,
    CONSTRAINT "Booking_window_check" CHECK (window_end > window_start),
    CONSTRAINT "Booking_no_overlap" EXCLUDE USING gist (
        int4range(crew, crew, '[]') WITH =,
        tstzrange(window_start, window_end) WITH &&
    )
);

-- A web-chat visitor's session: the bearer token is stored only as its SHA-256.
CREATE TABLE "ChatSession" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "ChatSession_pkey" PRIMARY KEY (id),
    CONSTRAINT "ChatSession_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE CASCADE
);
CREATE INDEX "ChatSession_conversation_id_idx" ON "ChatSession" (conversation_id);

-- Tokens for the JSON API (`junkquote admin create-token`), stored only as their SHA-256.
CREATE TABLE "ApiToken" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT "ApiToken_pkey" PRIMARY KEY (id)
);
CREATE UNIQUE INDEX "ApiToken_token_hash_key" ON "ApiToken" (token_hash);

-- An approval's token works once (decided_at) and not after it expires.
ALTER TABLE "Approval" ADD COLUMN expires_at timestamptz;

ALTER TABLE "Config" ADD COLUMN paused boolean NOT NULL DEFAULT false;
ALTER TABLE "Config" ADD COLUMN hours jsonb;

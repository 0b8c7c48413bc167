-- Identities: a customer may be reached by several phones, emails and Messenger ids, and a
-- message from any of them finds the same customer. Each normalised identifier belongs to one
-- customer at most (the unique key), so two customers are never silently the same person: the
-- operator merges them.
--
-- A web-chat visitor who names an existing customer's phone or email proves it with a one-time
-- code before the conversation is linked to that customer; the codes live in "IdentityChallenge"
-- (a hash only, expiring, attempt-limited).
--
-- Both tables are new, so nothing here locks a table the running service uses beyond the
-- brief lock that a new foreign key takes on "Customer" and "Conversation".

CREATE TYPE "IdentityKind" AS ENUM ('phone', 'email', 'psid');

CREATE TABLE "CustomerIdentity" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    kind "IdentityKind" NOT NULL,
    value text NOT NULL,
    raw text,
    verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "CustomerIdentity_pkey" PRIMARY KEY (id),
    CONSTRAINT "CustomerIdentity_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE RESTRICT,
    CONSTRAINT "CustomerIdentity_kind_value_key" UNIQUE (kind, value)
);
CREATE INDEX "CustomerIdentity_customer_id_idx" ON "CustomerIdentity" (customer_id);

CREATE TABLE "IdentityChallenge" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    kind "IdentityKind" NOT NULL,
    value text NOT NULL,
    code_hash text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "IdentityChallenge_pkey" PRIMARY KEY (id),
    CONSTRAINT "IdentityChallenge_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE CASCADE,
    CONSTRAINT "IdentityChallenge_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE CASCADE
);
CREATE INDEX "IdentityChallenge_conversation_id_created_at_idx"
    ON "IdentityChallenge" (conversation_id, created_at);
CREATE INDEX "IdentityChallenge_customer_id_idx" ON "IdentityChallenge" (customer_id);

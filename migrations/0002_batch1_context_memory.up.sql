-- Batch 1: the context-memory entities (8 tables -> 15).
--
-- Safe under a running original service: the seven tables are new, and the two columns added to
-- the existing "Lead" and "Job" tables are nullable with no default (a catalog-only change). Their
-- foreign keys are added NOT VALID so that no table scan runs under the ADD COLUMN lock; migration
-- 3 validates them and builds their indexes concurrently.
--
-- Delete behaviour: a customer's own records (addresses, conversations, memory notes) RESTRICT
-- deleting the customer, so erasure is an explicit operation that cannot be left half done;
-- children go with their parent (CASCADE); links that may outlive their target are SET NULL.
-- A row that cannot exist without its parent (an address, a message, an item) has a NOT NULL key.

CREATE TYPE "MessageRole" AS ENUM ('user', 'assistant', 'system', 'tool');

CREATE TABLE "Customer" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text,
    phone text,
    email text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Customer_pkey" PRIMARY KEY (id)
);
CREATE INDEX "Customer_phone_idx" ON "Customer" (phone);
CREATE INDEX "Customer_email_idx" ON "Customer" (email);
CREATE INDEX "Customer_created_at_idx" ON "Customer" (created_at);

-- The existing tables first, in the order the running service takes them ("Lead", then "Job"),
-- each with its strongest lock at once: taking a weaker lock first (a foreign key from a new
-- table) and upgrading it later is how migrations deadlock with live traffic.
ALTER TABLE "Lead" ADD COLUMN customer_id uuid;
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_customer_id_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;

ALTER TABLE "Job" ADD COLUMN customer_id uuid;
ALTER TABLE "Job" ADD CONSTRAINT "Job_customer_id_fkey" FOREIGN KEY (customer_id)
    REFERENCES "Customer" (id) ON DELETE SET NULL NOT VALID;

CREATE TABLE "CustomerAddress" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    address text NOT NULL,
    city text,
    state text,
    zip text,
    lat double precision,
    lng double precision,
    is_primary boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "CustomerAddress_pkey" PRIMARY KEY (id),
    CONSTRAINT "CustomerAddress_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE RESTRICT
);
CREATE INDEX "CustomerAddress_customer_id_idx" ON "CustomerAddress" (customer_id);

CREATE TABLE "Conversation" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    lead_id uuid,
    channel "Channel" NOT NULL,
    external_id text,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Conversation_pkey" PRIMARY KEY (id),
    CONSTRAINT "Conversation_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE RESTRICT,
    CONSTRAINT "Conversation_lead_id_fkey" FOREIGN KEY (lead_id)
        REFERENCES "Lead" (id) ON DELETE SET NULL
);
-- A customer's conversations by recency; also serves the foreign key.
CREATE INDEX "Conversation_customer_id_last_message_at_idx"
    ON "Conversation" (customer_id, last_message_at);
CREATE INDEX "Conversation_lead_id_idx" ON "Conversation" (lead_id);
CREATE INDEX "Conversation_last_message_at_idx" ON "Conversation" (last_message_at);

CREATE TABLE "Message" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    role "MessageRole" NOT NULL,
    content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Message_pkey" PRIMARY KEY (id),
    CONSTRAINT "Message_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE CASCADE
);
-- The messages of a conversation in time order; also serves the foreign key.
CREATE INDEX "Message_conversation_id_created_at_idx" ON "Message" (conversation_id, created_at);
CREATE INDEX "Message_created_at_idx" ON "Message" (created_at);

CREATE TABLE "MemoryNote" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    conversation_id uuid,
    content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "MemoryNote_pkey" PRIMARY KEY (id),
    CONSTRAINT "MemoryNote_customer_id_fkey" FOREIGN KEY (customer_id)
        REFERENCES "Customer" (id) ON DELETE RESTRICT,
    CONSTRAINT "MemoryNote_conversation_id_fkey" FOREIGN KEY (conversation_id)
        REFERENCES "Conversation" (id) ON DELETE SET NULL
);
-- The unexpired notes of a customer; also serves the foreign key.
CREATE INDEX "MemoryNote_customer_id_expires_at_idx" ON "MemoryNote" (customer_id, expires_at);
CREATE INDEX "MemoryNote_conversation_id_idx" ON "MemoryNote" (conversation_id);
-- The purge of expired notes.
CREATE INDEX "MemoryNote_expires_at_idx" ON "MemoryNote" (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE "JobItem" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    job_id uuid NOT NULL,
    description text NOT NULL,
    quantity integer NOT NULL DEFAULT 1,
    unit_price numeric(10, 2),
    total numeric(10, 2),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "JobItem_pkey" PRIMARY KEY (id),
    CONSTRAINT "JobItem_job_id_fkey" FOREIGN KEY (job_id)
        REFERENCES "Job" (id) ON DELETE CASCADE
);
CREATE INDEX "JobItem_job_id_idx" ON "JobItem" (job_id);

CREATE TABLE "JobEvent" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    job_id uuid NOT NULL,
    event_type text NOT NULL,
    actor text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "JobEvent_pkey" PRIMARY KEY (id),
    CONSTRAINT "JobEvent_job_id_fkey" FOREIGN KEY (job_id)
        REFERENCES "Job" (id) ON DELETE CASCADE
);
-- The events of a job in time order (the latest last); also serves the foreign key.
CREATE INDEX "JobEvent_job_id_created_at_idx" ON "JobEvent" (job_id, created_at);

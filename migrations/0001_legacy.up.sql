-- The schema of the original JunkQuoteAgent before its "Batch 1": eight tables and five enums in
-- `public`, with the original's quoted PascalCase table names and Prisma's constraint names, so
-- that a database the original created can be adopted as being at this version.

CREATE TYPE "Channel" AS ENUM ('messenger', 'sms');
CREATE TYPE "LeadStage" AS ENUM (
    'awaiting_photos', 'clarifying', 'quoting', 'awaiting_owner',
    'scheduling', 'booked', 'reminding', 'done'
);
CREATE TYPE "QuoteStatus" AS ENUM (
    'draft', 'pending_approval', 'approved', 'denied', 'sent', 'accepted'
);
CREATE TYPE "JobStatus" AS ENUM ('tentative', 'booked', 'completed', 'cancelled');
CREATE TYPE "ApprovalStatus" AS ENUM ('pending', 'approved', 'denied');

CREATE TABLE "Lead" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    channel "Channel" NOT NULL,
    name text,
    "messengerPsid" text,
    phone text,
    email text,
    address text,
    lat double precision,
    lng double precision,
    curbside boolean NOT NULL DEFAULT false,
    stage "LeadStage" NOT NULL DEFAULT 'awaiting_photos',
    "stateMetadata" jsonb,
    last_customer_message_at timestamptz,
    last_agent_message_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Lead_pkey" PRIMARY KEY (id)
);
CREATE UNIQUE INDEX "Lead_messengerPsid_key" ON "Lead" ("messengerPsid");

CREATE TABLE "Quote" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL,
    features_json jsonb NOT NULL,
    line_items_json jsonb NOT NULL,
    discounts_json jsonb NOT NULL,
    subtotal numeric(10, 2) NOT NULL,
    total numeric(10, 2) NOT NULL,
    confidence numeric(3, 2) NOT NULL,
    needs_approval boolean NOT NULL DEFAULT false,
    status "QuoteStatus" NOT NULL DEFAULT 'draft',
    flags_json jsonb,
    notes_json jsonb,
    disclaimer text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Quote_pkey" PRIMARY KEY (id),
    CONSTRAINT "Quote_lead_id_fkey" FOREIGN KEY (lead_id)
        REFERENCES "Lead" (id) ON DELETE CASCADE
);

CREATE TABLE "Job" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL,
    quote_id uuid,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    status "JobStatus" NOT NULL DEFAULT 'tentative',
    reminder_scheduled_at timestamptz,
    reminder_sent_at timestamptz,
    google_calendar_id text,
    google_event_id text,
    google_event_ical_uid text,
    google_event_etag text,
    google_event_html_link text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Job_pkey" PRIMARY KEY (id),
    CONSTRAINT "Job_lead_id_fkey" FOREIGN KEY (lead_id)
        REFERENCES "Lead" (id) ON DELETE CASCADE,
    CONSTRAINT "Job_quote_id_fkey" FOREIGN KEY (quote_id)
        REFERENCES "Quote" (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX "Job_quote_id_key" ON "Job" (quote_id);
CREATE UNIQUE INDEX "Job_google_event_id_key" ON "Job" (google_event_id);

CREATE TABLE "Approval" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    quote_id uuid NOT NULL,
    token text NOT NULL,
    status "ApprovalStatus" NOT NULL DEFAULT 'pending',
    approver text,
    decided_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Approval_pkey" PRIMARY KEY (id),
    CONSTRAINT "Approval_quote_id_fkey" FOREIGN KEY (quote_id)
        REFERENCES "Quote" (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX "Approval_token_key" ON "Approval" (token);

CREATE TABLE "Audit" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lead_id uuid,
    actor text NOT NULL,
    action text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Audit_pkey" PRIMARY KEY (id),
    CONSTRAINT "Audit_lead_id_fkey" FOREIGN KEY (lead_id)
        REFERENCES "Lead" (id) ON DELETE SET NULL
);

CREATE TABLE "LeadAttachment" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL,
    url text NOT NULL,
    source text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "LeadAttachment_pkey" PRIMARY KEY (id),
    CONSTRAINT "LeadAttachment_lead_id_fkey" FOREIGN KEY (lead_id)
        REFERENCES "Lead" (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX "LeadAttachment_lead_id_url_key" ON "LeadAttachment" (lead_id, url);

CREATE TABLE "Config" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id text NOT NULL,
    service_area jsonb,
    pricebook jsonb,
    quote_policy jsonb,
    channels jsonb,
    reminder_hours integer[] NOT NULL DEFAULT '{24,2}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "Config_pkey" PRIMARY KEY (id)
);
CREATE UNIQUE INDEX "Config_tenant_id_key" ON "Config" (tenant_id);

CREATE TABLE "CalendarSyncState" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    calendar_id text NOT NULL,
    sync_token text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "CalendarSyncState_pkey" PRIMARY KEY (id)
);
CREATE UNIQUE INDEX "CalendarSyncState_calendar_id_key" ON "CalendarSyncState" (calendar_id);

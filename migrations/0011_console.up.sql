-- The operator's console: users (created with `junkquote admin create-user`, argon2 hashes),
-- their sessions (only a hash of the cookie's token is stored, with the session's CSRF token),
-- and login attempts, which the login rate limit counts per email and per client address.
--
-- All three tables are new: nothing here locks a table the running service uses.

CREATE TABLE "ConsoleUser" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "ConsoleUser_pkey" PRIMARY KEY (id),
    CONSTRAINT "ConsoleUser_email_key" UNIQUE (email)
);

CREATE TABLE "ConsoleSession" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    token_hash text NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT "ConsoleSession_pkey" PRIMARY KEY (id),
    CONSTRAINT "ConsoleSession_user_id_fkey" FOREIGN KEY (user_id)
        REFERENCES "ConsoleUser" (id) ON DELETE CASCADE,
    CONSTRAINT "ConsoleSession_token_hash_key" UNIQUE (token_hash)
);
CREATE INDEX "ConsoleSession_user_id_idx" ON "ConsoleSession" (user_id);
CREATE INDEX "ConsoleSession_expires_at_idx" ON "ConsoleSession" (expires_at);

CREATE TABLE "LoginAttempt" (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NOT NULL,
    address text NOT NULL,
    succeeded boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "LoginAttempt_pkey" PRIMARY KEY (id)
);
CREATE INDEX "LoginAttempt_email_created_at_idx" ON "LoginAttempt" (email, created_at);
CREATE INDEX "LoginAttempt_address_created_at_idx" ON "LoginAttempt" (address, created_at);

//! `junkquote legacy seed`: legacy data as the original JunkQuoteAgent wrote it, so that adoption,
//! the backfill and the tightening can be rehearsed and measured.
//!
//! Deterministic: the same `--leads` and `--seed` give the same rows (ids included), because
//! every choice is a hash of the lead's number and the seed. Set-based: each chunk of leads is
//! a handful of `INSERT … SELECT … FROM generate_series` statements, no row-by-row round trips.
//!
//! What it writes, per lead: the channel (about 30 % Messenger), a phone in one of ten formats
//! (about 3 % not a number at all), an email in mixed case with stray spaces (some not an
//! address), a PSID on Messenger leads, a name, an address; about 30 % of leads are repeat
//! customers who show some of an earlier person's identifiers, so that leads link transitively
//! (one lead has the phone, a second the phone and the email, a third only the email); every
//! 500th pair of leads is two Messenger users sharing one phone (a conflict the backfill must
//! report, not merge). Audit rows carry the conversation (actor customer/user and
//! agent/assistant, the text under `text`, `message`, `content` or `body`), a few payloads are
//! not objects; `stateMetadata` holds the last messages again (so the backfill must de-duplicate)
//! and, for a few leads, is a bare string or has a broken history. About 60 % of leads have a
//! quote and half of those a job.

use std::time::Instant;

use sqlx::{Connection, PgConnection};

/// How many leads each transaction seeds.
const CHUNK: i64 = 25_000;

/// What was seeded.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    /// Leads written.
    pub leads: u64,
    /// Audit rows written.
    pub audits: u64,
    /// Quotes written.
    pub quotes: u64,
    /// Jobs written.
    pub jobs: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// `abs(hash(i, salt)) % m` in SQL: the deterministic choice for lead (or person) `i`.
fn h(i: &str, salt: &str, m: u32) -> String {
    format!("(abs(hashtextextended({i}::text || ':{salt}', $1)) % {m})")
}

fn pick(list: &[&str], index: &str) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("'{s}'")).collect();
    format!("(ARRAY[{}])[1 + {index}]", quoted.join(", "))
}

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Nguyen",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "example.org",
];
const AREA: &[&str] = &[
    "212", "312", "404", "415", "503", "617", "702", "713", "214", "305", "206", "303",
];
const STREETS: &[&str] = &[
    "Oak St",
    "Maple Ave",
    "Pine Rd",
    "Cedar Ln",
    "Elm St",
    "Washington Blvd",
    "Lake Dr",
    "Hill St",
    "Park Ave",
    "Main St",
];
const CITIES: &[&str] = &[
    "Springfield, IL 62701",
    "Portland, OR 97205",
    "Austin, TX 78701",
    "Atlanta, GA 30303",
    "Denver, CO 80202",
    "Seattle, WA 98101",
];
const CUSTOMER_SAYS: &[&str] = &[
    "Hi, I need a couch and a mattress hauled away",
    "Can you take an old fridge?",
    "It is about 10 bags of trash and a dresser",
    "The stuff is in the garage, curbside is fine",
    "Tomorrow morning works for me",
    "How much for a full load?",
    "There are stairs, second floor",
    "Yes please book it",
    "Is the price including the mattress fee?",
    "Thanks!",
    "Actually also a treadmill",
    "Gate code is 4412",
];
const AGENT_SAYS: &[&str] = &[
    "Thanks! Could you send a photo of the items?",
    "Got it. What is the pickup address?",
    "Your estimate is $259 for about a quarter load.",
    "I can offer Tuesday 9:00-11:00 or Wednesday 13:00-15:00.",
    "You are booked. We will text a reminder the day before.",
    "Is everything curbside, or are there stairs?",
    "Estimate pending onsite confirmation.",
    "The owner will confirm the price shortly.",
];

/// The text of message `k` of lead `i` (odd: the customer's, even: the agent's), in SQL.
fn message_text(i: &str, k: &str) -> String {
    let ik = format!("({i} * 100 + {k})");
    format!(
        "CASE WHEN {k} % 2 = 1 THEN {} ELSE {} END",
        pick(CUSTOMER_SAYS, &h(&ik, "say", CUSTOMER_SAYS.len() as u32)),
        pick(AGENT_SAYS, &h(&ik, "say", AGENT_SAYS.len() as u32))
    )
}

/// The actor of message `k` of lead `i`, in SQL.
fn message_actor(i: &str, k: &str) -> String {
    let ik = format!("({i} * 100 + {k})");
    format!(
        "CASE WHEN {k} % 2 = 1 THEN (CASE WHEN {} = 0 THEN 'user' ELSE 'customer' END)
              ELSE (CASE WHEN {} = 0 THEN 'assistant' ELSE 'agent' END) END",
        h(&ik, "actor", 5),
        h(&ik, "actor", 5)
    )
}

/// How many conversation messages lead `i` has, in SQL.
fn message_count(i: &str) -> String {
    format!("(4 + {})", h(i, "n", 11))
}

/// Whether the database has the original's `"Lead"` table (the legacy schema, or later).
pub async fn has_legacy_schema(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass('public.\"Lead\"') IS NOT NULL")
        .fetch_one(conn)
        .await
}

/// Writes `leads` legacy leads with `seed`, calling `progress(done)` after each chunk.
pub async fn seed(
    conn: &mut PgConnection,
    leads: u64,
    seed: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> sqlx::Result<Seeded> {
    let started = Instant::now();
    let mut out = Seeded::default();
    let total = i64::try_from(leads).unwrap_or(i64::MAX);
    let lead_sql = lead_insert();
    let audit_sql = audit_insert();
    let quote_sql = quote_insert();
    let job_sql = job_insert();
    let mut lo = 1;
    while lo <= total {
        let hi = (lo + CHUNK - 1).min(total);
        let mut tx = conn.begin().await?;
        for (sql, counter) in [
            (&lead_sql, &mut out.leads),
            (&audit_sql, &mut out.audits),
            (&quote_sql, &mut out.quotes),
            (&job_sql, &mut out.jobs),
        ] {
            let done = sqlx::query(sql)
                .bind(seed)
                .bind(lo)
                .bind(hi)
                .execute(&mut *tx)
                .await?;
            *counter += done.rows_affected();
        }
        tx.commit().await?;
        progress(u64::try_from(hi).unwrap_or(0));
        lo = hi + 1;
    }
    sqlx::query("ANALYZE \"Lead\", \"Audit\", \"Quote\", \"Job\"")
        .execute(&mut *conn)
        .await?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn lead_id(i: &str) -> String {
    format!("md5('lead:' || $1 || ':' || {i})::uuid")
}

fn lead_insert() -> String {
    // Person p: whose identifiers lead i shows. A repeat customer is an earlier lead's person.
    let person = format!(
        "CASE WHEN i > 10 AND {} < 30 THEN 1 + {} ELSE i END",
        h("i", "rep", 100),
        "(abs(hashtextextended(i::text || ':who', $1)) % (i - 1))"
    );
    // Every 500th pair: two Messenger users, each with their own PSID, both showing the phone
    // of the first of them.
    let conflict = "(i > 2 AND i % 500 IN (1, 2))";
    let digits = format!(
        "{} || lpad((200 + {} + CASE WHEN {} = 11 THEN 1 ELSE 0 END)::text, 3, '0') || lpad({}::text, 4, '0')",
        pick(AREA, &h("ph", "ac", AREA.len() as u32)),
        h("ph", "ex", 700),
        h("ph", "ex", 700).replace("% 700)", "% 700) % 100"),
        h("ph", "ln", 10_000)
    );
    let formatted = "CASE f
            WHEN 0 THEN '(' || substr(d, 1, 3) || ') ' || substr(d, 4, 3) || '-' || substr(d, 7)
            WHEN 1 THEN substr(d, 1, 3) || '.' || substr(d, 4, 3) || '.' || substr(d, 7)
            WHEN 2 THEN '+1 ' || substr(d, 1, 3) || ' ' || substr(d, 4, 3) || ' ' || substr(d, 7)
            WHEN 3 THEN d
            WHEN 4 THEN '1-' || substr(d, 1, 3) || '-' || substr(d, 4, 3) || '-' || substr(d, 7)
            WHEN 5 THEN ' +1' || d || ' '
            WHEN 6 THEN substr(d, 1, 3) || '-' || substr(d, 4, 3) || '-' || substr(d, 7)
            WHEN 7 THEN '+1 (' || substr(d, 1, 3) || ') ' || substr(d, 4, 3) || '-' || substr(d, 7)
            WHEN 8 THEN substr(d, 1, 3) || ' ' || substr(d, 4, 3) || ' ' || substr(d, 7)
            ELSE '1 (' || substr(d, 1, 3) || ') ' || substr(d, 4, 3) || '-' || substr(d, 7) END";
    let bad_phone = pick(&["555", "n/a", "000-000-0000", "12345"], &h("i", "badp", 4));
    let email_base = format!(
        "lower({}) || '.' || lower({}) || p || '@' || {}",
        pick(FIRST, &h("p", "fn", FIRST.len() as u32)),
        pick(LAST, &h("p", "ln", LAST.len() as u32)),
        pick(DOMAINS, &h("p", "dom", DOMAINS.len() as u32))
    );
    let name = format!(
        "CASE WHEN {} < 10 THEN NULL ELSE {} || ' ' || {} END",
        h("i", "noname", 100),
        pick(FIRST, &h("p", "fn", FIRST.len() as u32)),
        pick(LAST, &h("p", "ln", LAST.len() as u32))
    );
    let address = format!(
        "CASE WHEN {} < 20 THEN NULL ELSE
            (100 + {})::text || ' ' || {} || ', ' || {} END",
        h("i", "addr", 100),
        h("p", "no", 9900),
        pick(STREETS, &h("p", "st", STREETS.len() as u32)),
        pick(CITIES, &h("p", "city", CITIES.len() as u32))
    );
    let stage = pick(
        &[
            "awaiting_photos",
            "clarifying",
            "quoting",
            "awaiting_owner",
            "scheduling",
            "booked",
            "reminding",
            "done",
        ],
        &h("i", "stage", 8),
    );
    let n = message_count("i");
    let history = format!(
        "(SELECT jsonb_agg(jsonb_build_object(
                    'role', CASE WHEN ({actor}) IN ('customer', 'user') THEN 'user' ELSE 'assistant' END,
                    'content', {text},
                    'at', to_char((created + k * interval '90 seconds') AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) ORDER BY k)
                 || CASE WHEN {extra} = 0
                         THEN jsonb_build_array(jsonb_build_object('role', 'assistant',
                              'content', 'Just checking in: still need the pickup?'))
                         ELSE '[]'::jsonb END
          FROM generate_series(greatest(1, {n} - 3), {n}) k)",
        actor = message_actor("i", "k"),
        text = message_text("i", "k"),
        extra = h("i", "extra", 10),
    );
    format!(
        "INSERT INTO \"Lead\" (id, channel, name, \"messengerPsid\", phone, email, address, lat, lng,
                              curbside, stage, \"stateMetadata\", last_customer_message_at,
                              last_agent_message_at, created_at, updated_at)
         SELECT {lead_id}, channel::\"Channel\", name,
                CASE WHEN channel = 'messenger' AND p = i
                     THEN '2' || lpad(($1 % 1000)::text, 3, '0') || lpad(p::text, 12, '0') END,
                CASE WHEN NOT show_phone THEN NULL
                     WHEN {badp} < 3 THEN {bad_phone}
                     ELSE {formatted} END,
                CASE WHEN NOT show_email THEN NULL
                     WHEN {bade} < 2 THEN replace(e, '@', ' at ')
                     ELSE CASE WHEN {sp} = 0 THEN '  ' ELSE '' END
                          || CASE {case} WHEN 0 THEN e WHEN 1 THEN initcap(e) ELSE upper(e) END
                          || CASE WHEN {sp} = 1 THEN ' ' ELSE '' END END,
                CASE WHEN address IS NULL THEN NULL
                     WHEN {af} = 1 THEN upper(address)
                     WHEN {af} = 2 THEN replace(address, ' ', '  ')
                     ELSE address END,
                CASE WHEN address IS NULL THEN NULL ELSE 30 + {lat} / 1000.0 END,
                CASE WHEN address IS NULL THEN NULL ELSE -120 + {lng} / 1000.0 END,
                {curb} = 0, ({stage})::\"LeadStage\",
                CASE WHEN {sm} < 2 THEN to_jsonb('state lost in a crash'::text)
                     WHEN {sm} < 4 THEN jsonb_build_object('stage', 'quoting', 'history', 'not an array')
                     WHEN {sm} < 5 THEN jsonb_build_object('history',
                                            jsonb_build_array(1, 'x', jsonb_build_object('role', 'user')))
                     ELSE jsonb_build_object('stage', ({stage}), 'items', jsonb_build_array('couch'),
                                             'history', {history}) END,
                created + {n} * interval '90 seconds', created + {n} * interval '90 seconds',
                created, created + {n} * interval '90 seconds'
         FROM (
             SELECT i, p, d, f, name, address, created, e,
                    CASE WHEN conflict THEN 'messenger'
                         WHEN {ch} < 30 THEN 'messenger' ELSE 'sms' END AS channel,
                    CASE WHEN conflict THEN true
                         WHEN {ch} < 30 THEN {mph} < 30 ELSE true END AS show_phone,
                    CASE WHEN conflict THEN false
                         WHEN {ch} < 30 THEN {mem} < 40 ELSE {sem} < 35 END AS show_email
             FROM (
                 SELECT i, p, conflict, ph, {digits} AS d, {f} AS f, {name} AS name,
                        {address} AS address, {email_base} AS e,
                        timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' AS created
                 FROM (
                     SELECT i, p, conflict,
                            CASE WHEN conflict THEN i - i % 500 + 1 ELSE p END AS ph
                     FROM (
                         SELECT i, {conflict} AS conflict,
                                CASE WHEN {conflict} THEN i ELSE {person} END AS p
                         FROM generate_series($2::bigint, $3::bigint) AS i
                         OFFSET 0
                     ) a
                     OFFSET 0
                 ) b
                 OFFSET 0
             ) c
             OFFSET 0
         ) l",
        lead_id = lead_id("i"),
        badp = h("i", "badp2", 100),
        bade = h("i", "bade", 100),
        sp = h("i", "sp", 4),
        case = h("i", "case", 3),
        af = h("i", "af", 3),
        lat = h("p", "lat", 1000),
        lng = h("p", "lng", 1000),
        curb = h("i", "curb", 4),
        sm = h("i", "sm", 1000),
        ch = h("i", "ch", 100),
        mph = h("i", "mph", 100),
        mem = h("i", "mem", 100),
        sem = h("i", "sem", 100),
        f = h("i", "fmt", 10),
    )
}

fn audit_insert() -> String {
    let n = message_count("i");
    let ik = "(i * 100 + k)";
    let key = pick(&["text", "message", "content", "body"], &h(ik, "key", 4));
    format!(
        "INSERT INTO \"Audit\" (id, lead_id, actor, action, payload, created_at)
         SELECT md5('audit:' || $1 || ':' || i || ':' || k)::uuid, {lead_id},
                CASE WHEN k = 0 THEN 'system' WHEN k < 0 THEN 'system' ELSE {actor} END,
                CASE WHEN k = 0 THEN 'lead_created' WHEN k < 0 THEN 'stage_change'
                     WHEN k % 2 = 1 THEN (CASE WHEN {act} = 0 THEN 'customer_sms' ELSE 'customer_message' END)
                     ELSE 'agent_reply' END,
                CASE WHEN k = 0 THEN jsonb_build_object('text', 'Lead created')
                     WHEN k < 0 THEN jsonb_build_object('from', 'clarifying', 'to', 'quoting')
                     WHEN {bad} = 0 THEN to_jsonb('raw provider payload'::text)
                     WHEN {bad} = 1 THEN '[1, 2, 3]'::jsonb
                     ELSE jsonb_build_object({key}, {text}, 'channel', 'legacy') END,
                timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds'
                    + greatest(k, 0) * interval '90 seconds' + CASE WHEN k < 0 THEN interval '5 seconds' ELSE interval '0' END
         FROM generate_series($2::bigint, $3::bigint) AS i,
              generate_series(-1, {n}) AS k",
        lead_id = lead_id("i"),
        actor = message_actor("i", "k"),
        act = h(ik, "act", 2),
        bad = h(ik, "bad", 700),
        text = message_text("i", "k"),
    )
}

fn quote_insert() -> String {
    format!(
        "INSERT INTO \"Quote\" (id, lead_id, features_json, line_items_json, discounts_json,
                               subtotal, total, confidence, needs_approval, status, created_at,
                               updated_at, disclaimer)
         SELECT md5('quote:' || $1 || ':' || i)::uuid, {lead_id}, '{{}}', '[]', '[]',
                150 + {amount}, 150 + {amount}, 0.85, false, 'sent',
                timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' + interval '5 minutes',
                timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' + interval '5 minutes',
                'Estimate pending onsite confirmation. Weight/regulated items may affect final price.'
         FROM generate_series($2::bigint, $3::bigint) AS i
         WHERE {quoted} < 60",
        lead_id = lead_id("i"),
        amount = h("i", "amount", 600),
        quoted = h("i", "quoted", 100),
    )
}

fn job_insert() -> String {
    format!(
        "INSERT INTO \"Job\" (id, lead_id, quote_id, window_start, window_end, status, created_at,
                             updated_at)
         SELECT md5('job:' || $1 || ':' || i)::uuid, {lead_id}, md5('quote:' || $1 || ':' || i)::uuid,
                timestamptz '2024-01-03 15:00:00+00' + i * interval '17 seconds',
                timestamptz '2024-01-03 17:00:00+00' + i * interval '17 seconds',
                (CASE WHEN {done} < 70 THEN 'completed' ELSE 'booked' END)::\"JobStatus\",
                timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' + interval '10 minutes',
                timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' + interval '10 minutes'
         FROM generate_series($2::bigint, $3::bigint) AS i
         WHERE {quoted} < 60 AND {booked} < 50",
        lead_id = lead_id("i"),
        done = h("i", "done", 100),
        quoted = h("i", "quoted", 100),
        booked = h("i", "booked", 100),
    )
}

//! Row-level security (migrations/0003_rls.sql): a role other than the tables' owner, granted
//! SELECT, reads only the rows of the user its JWT subject names, on plain PostgreSQL and where
//! Supabase's `auth.uid()` exists.

use smsgate::metrics::Metrics;
use smsgate::store::{migrate, PostgresStore};
use tokio_postgres::Client;

use crate::db::{base_url, connect, TestDb};

const TABLES: [&str; 4] = ["sms_otp_sessions", "otp_logs", "sms_messages_log", "user_contact_settings"];

/// Applies every migration to the database (and schema) `url` names.
async fn migrate(url: &str) {
    let store = PostgresStore::connect(url, 2, Metrics::new()).expect("pool");
    migrate::run(store.pool()).await.expect("migrations apply");
}

/// One row per table for `user`, as the owning gateway would write it.
async fn insert_rows(owner: &Client, user: &str) {
    owner
        .execute(
            "INSERT INTO sms_otp_sessions (id, user_id, phone, code_hmac, max_attempts, expires_at)
             VALUES (gen_random_uuid(), $1, '+919876543210', '\\x00', 5, now() + interval '5 minutes')",
            &[&user],
        )
        .await
        .unwrap();
    owner
        .execute(
            "INSERT INTO otp_logs (user_id, phone, type, status) VALUES ($1, '+919876543210', 'local', 'sent')",
            &[&user],
        )
        .await
        .unwrap();
    // One row in the current month's partition and one in the default partition.
    for at in ["now()", "'2100-01-01'::timestamptz"] {
        owner
            .execute(
                &format!(
                    "INSERT INTO sms_messages_log (id, message_id, user_id, \"to\", type, provider_name, outcome, response_time_ms, created_at)
                     VALUES (gen_random_uuid(), gen_random_uuid(), $1, '+919876543210', 'otp', 'sim', 'sent', 5, {at})"
                ),
                &[&user],
            )
            .await
            .unwrap();
    }
    owner
        .execute(
            "INSERT INTO user_contact_settings (user_id, phone) VALUES ($1, '+919876543210')",
            &[&user],
        )
        .await
        .unwrap();
}

/// The distinct `user_id`s `client` can read from `table`, sorted.
async fn visible(client: &Client, table: &str) -> Vec<String> {
    let rows = client
        .query(&format!("SELECT DISTINCT user_id FROM {table} ORDER BY 1"), &[])
        .await
        .unwrap_or_else(|e| panic!("reading {table}: {e}"));
    rows.iter().map(|r| r.get(0)).collect()
}

/// A NOLOGIN role made for one test, dropped (with its grants) when the test ends, pass or fail.
struct TempRole {
    name: String,
    url: String,
}

impl TempRole {
    async fn create(owner: &Client, url: &str) -> Self {
        let name = format!("rls_{}", uuid::Uuid::new_v4().simple());
        owner.batch_execute(&format!("CREATE ROLE {name} NOLOGIN")).await.unwrap();
        Self { name, url: url.into() }
    }
}

impl Drop for TempRole {
    fn drop(&mut self) {
        let (name, url) = (self.name.clone(), self.url.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}")).await;
                }
            })
        })
        .join();
    }
}

/// Sets the request's JWT the way PostgREST does (empty: no request subject).
async fn set_subject(session: &Client, sub: &str, claims: &str) {
    session
        .execute(
            "SELECT set_config('request.jwt.claim.sub', $1, false), set_config('request.jwt.claims', $2, false)",
            &[&sub, &claims],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_role_reads_only_its_subjects_rows() {
    let db = TestDb::new().await;
    migrate(&db.url()).await;
    let owner = db.client().await;
    insert_rows(&owner, "user-a").await;
    insert_rows(&owner, "user-b").await;
    for t in TABLES {
        assert_eq!(
            visible(&owner, t).await,
            ["user-a", "user-b"],
            "the owner (the gateway) reads every row of {t}"
        );
    }

    let role = TempRole::create(&owner, &base_url()).await;
    let r = &role.name;
    owner
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA \"{s}\" TO {r}; GRANT SELECT ON {tables} TO {r}; GRANT SELECT ON sms_messages_log_default TO {r}",
            s = db.schema,
            tables = TABLES.join(", ")
        ))
        .await
        .unwrap();

    let session = db.client().await;
    session.batch_execute(&format!("SET ROLE {r}")).await.unwrap();
    set_subject(&session, "user-a", "").await;
    for t in TABLES {
        assert_eq!(visible(&session, t).await, ["user-a"], "{t} with subject user-a");
    }
    let rows = session.query("SELECT count(*) FROM sms_messages_log", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2, "both partitions' rows of user-a, through the parent");
    assert!(
        visible(&session, "sms_messages_log_default").await.is_empty(),
        "a partition read directly (not through the parent) shows nothing"
    );

    // PostgREST ≥ 9 sets only the JSON claims.
    set_subject(&session, "", r#"{"sub": "user-b", "role": "x"}"#).await;
    for t in TABLES {
        assert_eq!(visible(&session, t).await, ["user-b"], "{t} with claims.sub user-b");
    }

    set_subject(&session, "", "").await;
    for t in TABLES {
        assert!(visible(&session, t).await.is_empty(), "{t} with no subject");
    }
    let write = session
        .execute("UPDATE user_contact_settings SET phone = NULL WHERE user_id = 'user-a'", &[])
        .await;
    assert!(write.is_err(), "the read-only role cannot write");
    session.batch_execute("RESET ROLE").await.unwrap();
}

/// The Supabase branch. `auth.uid()` is looked up by its fixed schema name `auth`, whatever the
/// search_path, so creating an `auth` schema in the shared test database would switch every
/// concurrently migrating test schema to that branch. The test therefore makes its own
/// throwaway database (created and force-dropped here) holding a fake `auth.uid()` that reads
/// the JWT subject as Supabase's does. Role `authenticated` is cluster-wide: it is created
/// when absent and left in place (NOLOGIN, no privileges outside the dropped database), so
/// concurrent runs never drop it from under each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_supabase_authenticated_reads_only_auth_uid_rows() {
    let admin = connect(&base_url()).await;
    let dbname = format!("rls_supabase_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE {dbname}")).await.unwrap();
    let url = {
        let mut u = url::Url::parse(&base_url()).unwrap();
        u.set_path(&dbname);
        u.set_query(None);
        u.to_string()
    };
    let result = tokio::spawn(supabase_checks(url)).await;
    admin.batch_execute(&format!("DROP DATABASE {dbname} WITH (FORCE)")).await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn supabase_checks(url: String) {
    let owner = connect(&url).await;
    owner
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             CREATE SCHEMA auth;
             CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
               $f$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $f$;
             GRANT USAGE ON SCHEMA auth TO authenticated;",
        )
        .await
        .unwrap();
    migrate(&url).await;
    let policies = owner
        .query(
            "SELECT tablename::text, roles::text, qual FROM pg_policies WHERE policyname = 'smsgate_own_rows' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(policies.len(), TABLES.len());
    for p in &policies {
        let (table, roles, qual): (String, String, String) = (p.get(0), p.get(1), p.get(2));
        assert_eq!(roles, "{authenticated}", "{table}");
        assert!(qual.contains("auth.uid()"), "{table}: {qual}");
    }
    let (a, b) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    insert_rows(&owner, &a).await;
    insert_rows(&owner, &b).await;
    owner
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO authenticated; GRANT SELECT ON {} TO authenticated",
            TABLES.join(", ")
        ))
        .await
        .unwrap();
    let session = connect(&url).await;
    session.batch_execute("SET ROLE authenticated").await.unwrap();
    set_subject(&session, &a, "").await;
    for t in TABLES {
        assert_eq!(visible(&session, t).await, vec![a.clone()], "{t} as authenticated with uid a");
    }
    set_subject(&session, "", "").await;
    for t in TABLES {
        assert!(visible(&session, t).await.is_empty(), "{t} with no uid");
    }
}

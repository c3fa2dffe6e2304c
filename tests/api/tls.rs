//! TLS to PostgreSQL (`sslmode`, `sslrootcert`, `[database] ca_file`) against the local
//! server, which runs with `ssl = on` and a self-signed certificate (Debian's "snakeoil" one).
//! For `verify-full` the tests connect with `host=` the name the certificate holds (read from
//! it: Debian makes it for the host name of the machine it was made on, `localhost` here) and
//! `hostaddr=` the server's address, so the name is checked without resolving it.

use smsgate::config::DatabaseSettings;
use smsgate::metrics::Metrics;
use smsgate::store::{PostgresStore, Store};
use tokio_postgres::config::Host;
use x509_cert::der::Decode;

use crate::db::{base_url, connect, TestDb};
use crate::helpers::{config, spawn_via, start_sim};

/// A CA that signed nothing the server holds.
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUKqVb9I5waz5OOcu9riuCPhGs85kwCgYIKoZIzj0EAwIw
LjEsMCoGA1UEAwwjc21zZ2F0ZSB0ZXN0IENBIHRoYXQgc2lnbmVkIG5vdGhpbmcw
IBcNMjYxMjAyMDczNjUzWhgPMjEyNjExMDgwNzM2NTNaMC4xLDAqBgNVBAMMI3Nt
c2dhdGUgdGVzdCBDQSB0aGF0IHNpZ25lZCBub3RoaW5nMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEqukYm8Of1d9TtyIdeI//adMovwTJvI5MN1vEaoVdHjS94GBU
UXfGqEHUhtstbCJ9HuI1IIAFgpmDUaJ4fYUKEaNTMFEwHQYDVR0OBBYEFJoKJ2fa
GSluxz7jIhVFCnaOrdNzMB8GA1UdIwQYMBaAFJoKJ2faGSluxz7jIhVFCnaOrdNz
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgWG+4Faz7LpAeLhff
jePxgq6D2OJbdXpi9KCIWWWMNZcCIQDu7jRo+4x9BPF7g/orncl/aUacuSRe2sEb
iXnbpRUfyg==
-----END CERTIFICATE-----
";

/// Whether the connection the pool gives out is encrypted, as the server sees it.
async fn encrypted(store: &PostgresStore) -> bool {
    let client = store.pool().get().await.expect("a pooled connection");
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    row.get(0)
}

fn store(url: &str, settings: &DatabaseSettings) -> PostgresStore {
    PostgresStore::connect_with(url, settings, Metrics::new()).expect("the URL parses")
}

/// The server's certificate file and the first DNS name in it.
async fn server_certificate() -> (String, String) {
    let client = connect(&base_url()).await;
    let path: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let (_, names) = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectAltName>()
        .unwrap()
        .unwrap_or_else(|| panic!("{path} has no subjectAltName"));
    let name = names
        .0
        .iter()
        .find_map(|n| match n {
            x509_cert::ext::pkix::name::GeneralName::DnsName(name) => Some(name.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{path} names no host"));
    (path, name)
}

/// A key=value connection string to `db`'s schema through the server's address, with `host`
/// as the name TLS checks, and `extra` parameters.
fn url_as(db: &TestDb, host: &str, extra: &str) -> String {
    let base: tokio_postgres::Config = base_url().parse().unwrap();
    let Some(Host::Tcp(addr)) = base.get_hosts().first() else {
        panic!("the TLS tests need a TCP server")
    };
    let port = base.get_ports().first().copied().unwrap_or(5432);
    let user = base.get_user().unwrap_or("postgres");
    let dbname = base.get_dbname().unwrap_or("test");
    format!(
        "host={host} hostaddr={addr} port={port} user={user} dbname={dbname} options='-csearch_path={}' {extra}",
        db.schema
    )
}

/// The error, with its causes, of migrating through `url`: the first connection's error.
async fn connect_error(url: &str, settings: &DatabaseSettings) -> String {
    let err = PostgresStore::migrate(url, settings).await.expect_err("the connection is refused");
    format!("{err:#}")
}

#[tokio::test]
async fn sslmode_require_encrypts_migrates_and_serves_a_send() {
    let db = TestDb::new().await;
    let url = format!("{}&sslmode=require", db.url());
    let sim = start_sim().await;
    let settings = config(&sim);
    let app = spawn_via(db, url.clone(), sim, settings).await;
    let sent = app.send_otp().await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let store = store(&url, &DatabaseSettings::default());
    store.ping().await.unwrap();
    assert!(encrypted(&store).await, "sslmode=require encrypts");
    let client = store.pool().get().await.unwrap();
    let sessions: i64 = client.query_one("SELECT count(*) FROM sms_otp_sessions", &[]).await.unwrap().get(0);
    assert_eq!(sessions, 1, "the send was stored through the encrypted pool");
}

#[tokio::test]
async fn sslmode_disable_stays_plaintext_and_no_sslmode_prefers_tls() {
    let db = TestDb::new().await;
    let plain = store(&format!("{}&sslmode=disable", db.url()), &DatabaseSettings::default());
    assert!(!encrypted(&plain).await, "sslmode=disable is plaintext");
    let default = store(&db.url(), &DatabaseSettings::default());
    assert!(encrypted(&default).await, "no sslmode is prefer: TLS when the server offers it");
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let db = TestDb::new().await;
    let (cert, name) = server_certificate().await;
    let settings = DatabaseSettings::default();

    let url = url_as(&db, &name, &format!("sslmode=verify-full sslrootcert='{cert}'"));
    PostgresStore::migrate(&url, &settings).await.unwrap();
    let verified = store(&url, &settings);
    verified.ping().await.unwrap();
    assert!(encrypted(&verified).await);

    let from_config = DatabaseSettings {
        ca_file: Some(cert.clone().into()),
        ..DatabaseSettings::default()
    };
    let url = url_as(&db, &name, "sslmode=verify-full");
    store(&url, &from_config).ping().await.expect("[database] ca_file is the root");

    let elsewhere = url_as(&db, "elsewhere.invalid", &format!("sslmode=verify-full sslrootcert='{cert}'"));
    let err = connect_error(&elsewhere, &settings).await;
    assert!(err.contains("certificate") && err.contains("not valid for name"), "{err}");
    let any_name = url_as(&db, "elsewhere.invalid", &format!("sslmode=verify-ca sslrootcert='{cert}'"));
    store(&any_name, &settings).ping().await.expect("verify-ca checks the chain only");
}

#[tokio::test]
async fn verify_full_against_another_ca_fails_naming_the_certificate() {
    let db = TestDb::new().await;
    let (_, name) = server_certificate().await;
    let settings = DatabaseSettings::default();
    let other = std::env::temp_dir().join(format!("smsgate-other-ca-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&other, OTHER_CA).unwrap();

    let err = connect_error(
        &url_as(&db, &name, &format!("sslmode=verify-full sslrootcert='{}'", other.display())),
        &settings,
    )
    .await;
    assert!(err.contains("invalid peer certificate") && err.contains("UnknownIssuer"), "{err}");
    let err = connect_error(&url_as(&db, &name, "sslmode=verify-full sslrootcert=/nowhere/ca.pem"), &settings).await;
    assert!(err.contains("/nowhere/ca.pem"), "{err}");
    let _ = std::fs::remove_file(&other);
}

#[tokio::test]
async fn verify_full_without_a_ca_checks_against_the_system_roots() {
    let db = TestDb::new().await;
    let (cert, name) = server_certificate().await;
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap();
    // Debian links its snakeoil certificate into /etc/ssl/certs; elsewhere the server's
    // certificate is usually not a system root.
    let trusted = rustls_native_certs::load_native_certs().certs.contains(&der);
    let url = url_as(&db, &name, "sslmode=verify-full");
    match PostgresStore::migrate(&url, &DatabaseSettings::default()).await {
        Ok(_) => assert!(trusted, "{cert} is not a system root, yet it was accepted"),
        Err(e) => {
            let err = format!("{e:#}");
            assert!(!trusted, "{cert} is a system root, yet: {err}");
            assert!(err.contains("UnknownIssuer"), "{err}");
        }
    }
}

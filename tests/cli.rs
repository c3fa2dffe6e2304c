//! `smsgate token create`: the built binary on a temporary config file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use smsgate::api::{sha256_hex, Clients};
use smsgate::config::{Role, Settings};

const EXISTING: &str = r#"# operator's comment, kept
[otp]
default_country = "91"

[[providers]]
name = "console"
kind = "console"
"#;

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("smsgate-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn token_create(config: &Path, name: &str, roles: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["token", "create", "--name", name, "--roles", roles, "--config"])
        .arg(config)
        .env_remove("SMSGATE_CONFIG")
        .output()
        .expect("the binary runs")
}

/// The token printed on stdout by a successful run.
fn printed_token(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("sg_") && !token.contains(char::is_whitespace),
        "stdout is the token alone: {stdout:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));
    token
}

#[test]
fn token_create_stores_only_the_hash_and_the_token_authenticates() {
    let dir = TempDir::new();
    let config = dir.0.join("providers.toml");
    std::fs::write(&config, EXISTING).unwrap();
    let token = printed_token(&token_create(&config, "billing", "send,admin"));

    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(EXISTING), "what was there is kept");
    assert!(text.contains(&sha256_hex(&token)), "{text}");
    assert!(!text.contains(&token), "the token itself is never written");
    let settings = Settings::from_toml(&text).expect("the file still loads");
    assert_eq!(settings.providers.len(), 1);
    let caller = Clients::from_config(&settings.clients)
        .authenticate(&token)
        .cloned()
        .expect("the token authenticates");
    assert_eq!(caller.name, "billing");
    assert!(caller.has(Role::Send) && caller.has(Role::Admin) && !caller.has(Role::SuperAdmin));
}

#[test]
fn a_second_token_for_a_name_is_a_rotation_and_both_work() {
    let dir = TempDir::new();
    let config = dir.0.join("missing-yet.toml");
    let first = printed_token(&token_create(&config, "app", "send"));
    let second = printed_token(&token_create(&config, "app", "send"));
    assert_ne!(first, second);
    let settings = Settings::from_toml(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let clients = Clients::from_config(&settings.clients);
    for token in [&first, &second] {
        let caller = clients.authenticate(token).expect("both tokens stay valid");
        assert_eq!((caller.name.as_str(), caller.roles.as_slice()), ("app", &[Role::Send][..]));
        assert!(!caller.has(Role::Admin));
    }
}

#[test]
fn bad_roles_names_and_configs_change_nothing() {
    let dir = TempDir::new();
    let config = dir.0.join("providers.toml");
    std::fs::write(&config, EXISTING).unwrap();
    for (name, roles) in [("app", "send,root"), ("app", ","), ("two words", "send"), ("", "send")] {
        let out = token_create(&config, name, roles);
        assert_eq!(out.status.code(), Some(2), "{name} {roles}");
        assert!(out.stdout.is_empty(), "no token printed for {name} {roles}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    }
    printed_token(&token_create(&config, "app", "send"));
    let rotated_up = token_create(&config, "app", "super_admin");
    assert_eq!(rotated_up.status.code(), Some(2), "a rotation cannot change the roles");
    let before = std::fs::read_to_string(&config).unwrap();
    assert_eq!(before.matches("[[clients]]").count(), 1);

    let broken = dir.0.join("broken.toml");
    std::fs::write(&broken, "[otp]\nlenght = 6\n").unwrap();
    assert_eq!(token_create(&broken, "app", "send").status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), "[otp]\nlenght = 6\n");
}

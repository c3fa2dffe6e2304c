//! The built binary: `token create` on a temporary config file, and `check-config` / `serve`
//! in a folder that has no `providers.toml`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// The binary run in `dir` with none of the caller's configuration variables.
fn smsgate_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smsgate"));
    cmd.args(args).current_dir(dir).env_clear().env("NO_COLOR", "1");
    cmd
}

#[test]
fn check_config_in_a_folder_without_providers_toml_says_which_file_it_looked_for() {
    let dir = TempDir::new();
    let out = smsgate_in(&dir.0, &["check-config"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("built-in defaults") && stdout.contains("providers.toml not found"),
        "{stdout}"
    );
    assert!(stdout.contains("console provider"), "{stdout}");
}

#[test]
fn check_config_lists_the_hooks_on_and_names_an_unset_hook_variable() {
    let dir = TempDir::new();
    let file = dir.0.join("hooks.toml");
    std::fs::write(
        &file,
        "[hooks.supabase]\nsecrets = [\"v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n[hooks.keycloak]\ntoken_env = \"KEYCLOAK_HOOK_TOKEN\"\n",
    )
    .unwrap();
    let out = smsgate_in(&dir.0, &["check-config", "--config", "hooks.toml"])
        .env_remove("KEYCLOAK_HOOK_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hooks.keycloak.token_env") && stderr.contains("KEYCLOAK_HOOK_TOKEN"),
        "{stderr}"
    );
    let out = smsgate_in(&dir.0, &["check-config", "--config", "hooks.toml"])
        .env("KEYCLOAK_HOOK_TOKEN", "a-token")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("hook     supabase") && stdout.contains("hook     keycloak"),
        "{stdout}"
    );
    assert!(!stdout.contains("kratos"), "{stdout}");
}

#[test]
fn a_named_config_file_that_does_not_exist_is_an_error_naming_it() {
    let dir = TempDir::new();
    let out = smsgate_in(&dir.0, &["check-config", "--config", "nowhere.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere.toml") && stderr.contains("no such file"), "{stderr}");
}

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port in a `smsgate listening port=N` log line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("smsgate listening")?..];
    let digits: String = rest[rest.find("port=")? + 5..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Starts `smsgate serve` in a fresh empty folder on port 0 with `env` added; returns the
/// server, its port and the log lines up to the readiness line.
fn serve_in_empty_folder(env: &[(&str, &str)]) -> (Running, u16, String, TempDir) {
    let dir = TempDir::new();
    let mut cmd = smsgate_in(&dir.0, &["serve"]);
    cmd.env("SMSGATE_SERVER__LISTEN", "127.0.0.1:0");
    cmd.envs(env.iter().copied());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let server = Running(child);
    let (lines, seen) = mpsc::channel();
    // Drains stdout for the server's whole life: a closed pipe would fail its log writes.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => {
                let port = listening_port(&line);
                log.push(line);
                if let Some(port) = port {
                    break port;
                }
            }
            Err(_) => {
                drop(server);
                let mut err = String::new();
                let _ = stderr.read_to_string(&mut err);
                panic!("no readiness line before the deadline:\n{}\n{err}", log.join("\n"));
            }
        }
    };
    (server, port, log.join("\n"), dir)
}

/// The status line of `GET path` on the server at `port`.
fn get_status(port: u16, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn serve_in_a_folder_without_providers_toml_starts_on_the_defaults_and_says_so() {
    let (server, port, log, _dir) = serve_in_empty_folder(&[]);
    assert!(
        log.contains("providers.toml not found") && log.contains("built-in defaults"),
        "{log}"
    );
    let status = get_status(port, "/healthz");
    assert!(status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"), "{status}");
    drop(server);
}

#[test]
fn serve_starts_under_the_variables_kubernetes_makes_for_a_service_named_smsgate() {
    let (server, port, log, _dir) = serve_in_empty_folder(&[
        ("SMSGATE_PORT", "tcp://10.0.0.1:8080"),
        ("SMSGATE_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("SMSGATE_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("SMSGATE_PORT_8080_TCP_PORT", "8080"),
        ("SMSGATE_PORT_8080_TCP_PROTO", "tcp"),
        ("SMSGATE_SERVICE_HOST", "10.0.0.1"),
        ("SMSGATE_SERVICE_PORT", "8080"),
        ("SMSGATE_SERVICE_PORT_HTTP", "8080"),
        ("SMSGATE_LOG", "debug"),
    ]);
    assert!(
        log.contains("SMSGATE_PORT_8080_TCP_ADDR") && log.contains("Kubernetes service link"),
        "says at debug what it ignored: {log}"
    );
    let status = get_status(port, "/healthz");
    assert!(status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"), "{status}");
    drop(server);
}

#[test]
fn serve_refuses_a_mistyped_smsgate_variable_naming_it() {
    let dir = TempDir::new();
    for (name, key) in [("SMSGATE_OTP__TTL_SECOND", "ttl_second"), ("SMSGATE_FOO", "foo")] {
        let out = smsgate_in(&dir.0, &["serve"])
            .env("SMSGATE_SERVER__LISTEN", "127.0.0.1:0")
            .env("SMSGATE_SERVICE_HOST", "10.0.0.1")
            .env(name, "5")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("`{key}`")), "{name}: {stderr}");
    }
}

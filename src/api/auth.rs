//! Bearer-token authentication: tokens are known only by their SHA-256, and each carries roles.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::config::{ClientConfig, Role};

/// A known token's owner.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub roles: Vec<Role>,
}

impl Caller {
    /// Whether one of the caller's roles grants `role` (super_admin ⊇ admin ⊇ send).
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r.grants(role))
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// The app this caller acts for; admins see every app's sessions.
    pub fn tenant(&self) -> crate::service::Tenant {
        crate::service::Tenant {
            client: self.name.clone(),
            sees_every_app: self.is_admin(),
        }
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(role.as_str()))
        }
    }
}

/// The token table, keyed by SHA-256 hex.
#[derive(Debug, Default)]
pub struct Clients {
    by_hash: HashMap<String, Caller>,
}

impl Clients {
    pub fn from_config(clients: &[ClientConfig]) -> Self {
        let mut by_hash = HashMap::new();
        for c in clients {
            for h in c.token_sha256.iter().chain(&c.token_sha256s) {
                by_hash.insert(
                    h.to_ascii_lowercase(),
                    Caller {
                        name: c.name.clone(),
                        roles: c.roles.clone(),
                    },
                );
            }
        }
        Self { by_hash }
    }

    /// A fresh random token with `send` and `admin` for a gateway configured with no clients;
    /// returns the token (shown once) and the table.
    pub fn generated() -> (String, Self) {
        let token = new_token();
        let clients = Self::from_config(&[ClientConfig {
            name: "generated".into(),
            token_sha256: Some(sha256_hex(&token)),
            token_sha256s: Vec::new(),
            roles: vec![Role::Send, Role::Admin],
            phone: None,
        }]);
        (token, clients)
    }

    /// Each client's name, roles and number of active tokens, by name.
    pub fn summary(&self) -> Vec<serde_json::Value> {
        let mut by_name: std::collections::BTreeMap<&str, (&[Role], usize)> = std::collections::BTreeMap::new();
        for caller in self.by_hash.values() {
            by_name.entry(&caller.name).or_insert((&caller.roles, 0)).1 += 1;
        }
        by_name
            .into_iter()
            .map(|(name, (roles, tokens))| serde_json::json!({ "name": name, "roles": roles, "tokens": tokens }))
            .collect()
    }

    pub fn authenticate(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&sha256_hex(token))
    }
}

/// A new token: `sg_` and 32 random bytes in hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    format!("sg_{}", hex::encode(bytes))
}

pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1) and spaces may separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Unauthorized)?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    if !state.allowed_callers.is_empty() {
        let peer = req.peer_addr().map(|a| a.ip());
        if !peer.is_some_and(|ip| crate::net::any_contains(&state.allowed_callers, ip)) {
            return Err(ApiError::CallerNotAllowed);
        }
    }
    let clients: Arc<Clients> = state.clients.clone();
    clients.authenticate(token).cloned().ok_or(ApiError::Unauthorized)
}

//! What a client's token may do.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client role. `super_admin` holds every role and `admin` also holds `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Send and verify OTPs and messages.
    Send,
    /// Read and operate the admin API (providers, logs, status, test sends).
    Admin,
    /// Everything, including who may call (`/v1/admin/clients`).
    SuperAdmin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Send, Role::Admin, Role::SuperAdmin];

    /// The name used in configuration, on the command line and in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Send => "send",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    /// Parses a role name as written in configuration.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether holding `self` grants `wanted`.
    pub fn grants(self, wanted: Role) -> bool {
        match self {
            Role::SuperAdmin => true,
            Role::Admin => matches!(wanted, Role::Admin | Role::Send),
            Role::Send => wanted == Role::Send,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn super_admin_holds_admin_which_holds_send() {
        assert!(Role::SuperAdmin.grants(Role::Admin) && Role::SuperAdmin.grants(Role::Send));
        assert!(Role::Admin.grants(Role::Send) && !Role::Admin.grants(Role::SuperAdmin));
        assert!(!Role::Send.grants(Role::Admin));
    }
}

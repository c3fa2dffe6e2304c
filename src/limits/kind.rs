//! What a counter limits. Each kind names its counter keys (`phone:m:+91…`) and is read back from
//! a refused key, so the key format, the `reason` a client sees and its message live in one table.

/// One kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    ClientRate,
    PhonePerMinute,
    PhonePerDay,
    UserPerDay,
    IpPerMinute,
    PrefixVelocity,
    ResendCooldown,
    VerifyFailuresPerPhone,
    VerifyFailuresPerUser,
}

impl LimitKind {
    const ALL: [LimitKind; 9] = [
        Self::ClientRate,
        Self::PhonePerMinute,
        Self::PhonePerDay,
        Self::UserPerDay,
        Self::IpPerMinute,
        Self::PrefixVelocity,
        Self::ResendCooldown,
        Self::VerifyFailuresPerPhone,
        Self::VerifyFailuresPerUser,
    ];

    /// The start of every counter key of this kind.
    const fn prefix(self) -> &'static str {
        match self {
            Self::ClientRate => "client:",
            Self::PhonePerMinute => "phone:m:",
            Self::PhonePerDay => "phone:d:",
            Self::UserPerDay => "user:d:",
            Self::IpPerMinute => "ip:m:",
            Self::PrefixVelocity => "prefix:m:",
            Self::ResendCooldown => "resend:",
            Self::VerifyFailuresPerPhone => "vfail:p:",
            Self::VerifyFailuresPerUser => "vfail:u:",
        }
    }

    /// The counter key of this kind for `subject` (a phone, an IP, an app, …).
    pub fn key(self, subject: impl std::fmt::Display) -> String {
        format!("{}{subject}", self.prefix())
    }

    /// The kind a counter key belongs to.
    pub fn of_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| key.starts_with(k.prefix()))
    }

    /// The `reason` of a refusal: the API's field and the `blocks_total` label.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::ClientRate => "client_rate",
            Self::PhonePerMinute => "phone_per_minute",
            Self::PhonePerDay => "phone_per_day",
            Self::UserPerDay => "user_per_day",
            Self::IpPerMinute => "ip_per_minute",
            Self::PrefixVelocity => "prefix_velocity",
            Self::ResendCooldown => "resend_cooldown",
            Self::VerifyFailuresPerPhone => "verify_failures_per_phone",
            Self::VerifyFailuresPerUser => "verify_failures_per_user",
        }
    }

    /// What a person is told, with when to try again.
    pub fn message(self, retry_after: u64) -> String {
        let what = match self {
            Self::ResendCooldown => "a code was sent to this number moments ago",
            Self::PhonePerMinute | Self::PhonePerDay => "too many codes were requested for this number",
            Self::UserPerDay => "too many codes were requested for this user",
            Self::IpPerMinute => "too many requests from this end user's address",
            Self::ClientRate => "this app is over its request quota",
            Self::PrefixVelocity => "too many messages to numbers with this prefix",
            Self::VerifyFailuresPerPhone => "too many wrong codes were entered for this number",
            Self::VerifyFailuresPerUser => "too many wrong codes were entered for this user",
        };
        format!("{what}; try again in {retry_after} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_own_keys() {
        for kind in LimitKind::ALL {
            assert_eq!(LimitKind::of_key(&kind.key("+919876543210")), Some(kind), "{kind:?}");
        }
        assert_eq!(LimitKind::key(LimitKind::PhonePerMinute, "+919876543210"), "phone:m:+919876543210");
        assert_eq!(LimitKind::of_key("something:else"), None);
    }
}

use super::*;

#[test]
fn unknown_key_is_an_error_naming_the_key() {
    let err = Settings::from_toml("[otp]\nlenght = 6\n").unwrap_err().to_string();
    assert!(err.contains("lenght"), "{err}");
}

#[test]
fn out_of_range_code_length_names_the_key() {
    let err = Settings::from_toml("[otp]\nlength = 3\n").unwrap_err().to_string();
    assert!(err.contains("otp.length"), "{err}");
}

#[test]
fn seed_variables_configure_the_two_factor_entry() {
    let mut s = Settings::from_toml("[[providers]]\nname = \"2factor\"\nkind = \"two_factor\"\n").unwrap();
    s.apply_seed_env(&|k| match k {
        "SMS_SENDER_ID" => Some("ABCDEF".into()),
        "SMS_MODE" => Some("template".into()),
        _ => None,
    });
    assert_eq!(s.providers[0].sender_id.as_deref(), Some("ABCDEF"));
    assert_eq!(s.providers[0].otp_mode.as_deref(), Some("local"));
}

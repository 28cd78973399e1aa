//! Kafka's topic name rules (`Topic.validate`).

/// The longest legal topic name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name; the error is Kafka's message.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!("Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!("Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

/// Kafka treats '.' and '_' as the same when checking for collisions (metrics names).
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// Internal topics clients may not produce to directly.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_rules() {
        assert!(validate("orders.v1_x-2").is_ok());
        assert!(validate("").is_err());
        assert!(validate(".").is_err());
        assert!(validate("..").is_err());
        assert!(validate("has space").is_err());
        assert!(validate("ünïcode").is_err());
        assert!(validate(&"a".repeat(249)).is_ok());
        assert!(validate(&"a".repeat(250)).is_err());
        assert_eq!(collision_key("a.b_c"), "a_b_c");
    }
}

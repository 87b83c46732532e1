//! What makes an acceptable login e-mail, display name and new password, for every way of setting one
//! (`ADMIN_EMAIL`/`ADMIN_PASSWORD`, `orderflow users …`, `POST`/`PATCH /api/users`).

/// The seeded admin's password. It is printed in the README, so it is never accepted as a new
/// password, and the seeded one works only on a process that listens on loopback alone.
pub const DEMO_PASSWORD: &str = "admin123";

/// Fewest characters in a new password.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Most bytes in a password; argon2 takes any length, the bound keeps requests small.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Most bytes in an e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Whether `password` may become a user's password.
///
/// # Errors
/// Why not, in words for the person who chose it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password == DEMO_PASSWORD {
        return Err("is the published demo password; choose another".into());
    }
    Ok(())
}

/// Whether `email` may be a login e-mail: something@something, no spaces or control characters.
///
/// # Errors
/// Why not.
pub fn check_email(email: &str) -> Result<(), String> {
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!("must be at most {MAX_EMAIL_BYTES} bytes"));
    }
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err("must look like name@example.com".into()),
    }
}

/// Most characters in a display name.
pub const MAX_NAME_CHARS: usize = 200;

/// Whether `name` may be a display name: 1 to [`MAX_NAME_CHARS`] characters, no control ones.
///
/// # Errors
/// Why not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// The display name of a user created without one: the part of the e-mail before `@`.
pub fn default_name(email: &str) -> &str {
    email.split('@').next().filter(|local| !local.is_empty()).unwrap_or(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_published_passwords_are_refused() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_new_password(DEMO_PASSWORD).is_err());
        assert!(check_new_password("a long enough password").is_ok());
    }

    #[test]
    fn an_email_needs_one_at_sign_between_two_parts() {
        assert!(check_email("ada@example.com").is_ok());
        for bad in ["", "ada", "@example.com", "ada@", "a@b@c", "ada @example.com", "ada@example.com\0"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_defaults_to_the_start_of_the_email() {
        assert_eq!(default_name("ada@example.com"), "ada");
        assert!(check_name("Ada Lovelace").is_ok());
        assert!(check_name(" ").is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn a_password_may_be_exactly_as_short_or_as_long_as_allowed() {
        // Characters at the lower bound: eight of them in sixteen bytes still count as eight.
        assert!(check_new_password(&"é".repeat(MIN_PASSWORD_CHARS)).is_ok());
        assert!(check_new_password(&"é".repeat(MIN_PASSWORD_CHARS - 1)).is_err());
        // Bytes at the upper bound.
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn an_email_may_be_exactly_as_long_as_allowed() {
        let at_limit = format!("{}@example.com", "a".repeat(MAX_EMAIL_BYTES - "@example.com".len()));
        assert_eq!(at_limit.len(), MAX_EMAIL_BYTES);
        assert!(check_email(&at_limit).is_ok());
        assert!(check_email(&format!("a{at_limit}")).is_err());
    }

    #[test]
    fn a_name_may_be_exactly_as_long_as_allowed_in_characters() {
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}

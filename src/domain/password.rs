//! Console passwords: argon2id hashes in the PHC string format (salt and parameters included),
//! so the parameters can be raised later without invalidating stored hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest password accepted (argon2 takes any length; this bounds the work per login).
pub const MAX_LEN: usize = 200;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than [`MIN_LEN`] characters.
    #[error("the password must be at least {MIN_LEN} characters")]
    TooShort,
    /// More than [`MAX_LEN`] characters.
    #[error("the password must be at most {MAX_LEN} characters")]
    TooLong,
}

/// Checks a new password's length.
pub fn check(password: &str) -> Result<(), WeakPassword> {
    match password.chars().count() {
        n if n < MIN_LEN => Err(WeakPassword::TooShort),
        n if n > MAX_LEN => Err(WeakPassword::TooLong),
        _ => Ok(()),
    }
}

/// The argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    // 16 random bytes from the operating system's generator (what a v4 uuid is made of).
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored `hash` (a malformed hash matches nothing).
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash to verify against when the email is unknown, so that a login for an unknown email
/// takes as long as one for a known email with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("not a password anyone has").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").expect("hash"), "salted");
    }

    #[test]
    fn length_limits() {
        assert_eq!(check("short"), Err(WeakPassword::TooShort));
        assert_eq!(check(&"x".repeat(MAX_LEN + 1)), Err(WeakPassword::TooLong));
        assert_eq!(check("long enough pw"), Ok(()));
    }
}

//! Password hashing (argon2id, salted, PHC string format).
//!
//! Only hashes are stored; no query returns them.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{Error, Result};

/// Longest accepted password, to bound hashing work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hash a password for storage.
pub fn hash_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::InvalidParameter("password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidParameter(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| Error::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing: {e}")))
}

/// Check a password against a stored hash. Malformed hashes never verify.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("s3cret"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "garbage"));
    }
}

//! Authentication: HTTP Basic credentials and signed bearer tokens.
//!
//! Passwords are checked against argon2 hashes. Because argon2 is deliberately slow, a
//! successful check is remembered (as an HMAC of the password under a per-process key, never
//! the password itself) until the user's record changes, so Basic auth does not pay the hash
//! on every request. Tokens are `base64url(payload).base64url(hmac_sha256(key, payload))`
//! with the user, expiry and the user's record version; changing a password or role revokes
//! every token issued before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use kalamdb_core::{
    now_millis, verify_password, Catalog, Error, Principal, Result, UserDef, ROOT_USER,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Most remembered successful password checks.
const MAX_CACHED_LOGINS: usize = 10_000;

/// Checks credentials against the catalog.
pub struct Authenticator {
    catalog: Arc<Catalog>,
    token_key: Vec<u8>,
    cache_key: [u8; 32],
    token_ttl_secs: u64,
    /// (user_id, hmac(password)) -> user record version (updated_at_ms) it was verified at.
    verified: Mutex<HashMap<(String, [u8; 32]), u64>>,
    /// A hash of a random password: a login for a name without a hash is checked against it,
    /// so an unknown name costs the same argon2 work as a wrong password (no user discovery
    /// by timing).
    decoy_hash: String,
}

#[derive(Serialize, Deserialize)]
struct TokenPayload {
    sub: String,
    exp: u64,
    ver: u64,
}

/// A freshly issued token.
pub struct IssuedToken {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

fn unauthorized<T>(m: &str) -> Result<T> {
    Err(Error::Unauthorized(m.to_string()))
}

impl Authenticator {
    pub fn new(catalog: Arc<Catalog>, token_ttl_secs: u64) -> Result<Authenticator> {
        let token_key = catalog.token_signing_key()?;
        Ok(Authenticator {
            catalog,
            token_key,
            cache_key: rand::random(),
            token_ttl_secs,
            verified: Mutex::new(HashMap::new()),
            decoy_hash: kalamdb_core::hash_password(&format!("{:x}", rand::random::<u128>()))?,
        })
    }

    /// Authenticate an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>, peer: SocketAddr) -> Result<Principal> {
        self.authenticate_inner(header, peer, true)
            .unwrap_or_else(|| unauthorized("invalid username or password"))
    }

    /// [`Self::authenticate`] when it needs no password hashing: bearer tokens, malformed or
    /// missing headers, and Basic credentials already verified (cached). `None` when it would
    /// run argon2, which callers keep off the async workers.
    pub fn authenticate_without_hashing(
        &self,
        header: Option<&str>,
        peer: SocketAddr,
    ) -> Option<Result<Principal>> {
        self.authenticate_inner(header, peer, false)
    }

    fn authenticate_inner(
        &self,
        header: Option<&str>,
        peer: SocketAddr,
        may_hash: bool,
    ) -> Option<Result<Principal>> {
        let Some(header) = header else {
            return Some(unauthorized(
                "missing Authorization header (use Basic or Bearer)",
            ));
        };
        if let Some(b64) = strip_scheme(header, "basic") {
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some(decoded) = decoded else {
                return Some(unauthorized("malformed Basic credentials"));
            };
            let Some((user, password)) = decoded.split_once(':') else {
                return Some(unauthorized("malformed Basic credentials"));
            };
            return Some(
                self.verify(user, password, peer, may_hash)?
                    .map(|u| Principal {
                        user_id: u.user_id,
                        role: u.role,
                    }),
            );
        }
        if let Some(token) = strip_scheme(header, "bearer") {
            return Some(self.check_token(token.trim()));
        }
        Some(unauthorized(
            "unsupported Authorization scheme (use Basic or Bearer)",
        ))
    }

    /// Verify a user's password. `root` without a password may log in from loopback only.
    pub fn check_password(
        &self,
        user_id: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<UserDef> {
        self.verify(user_id, password, peer, true)
            .unwrap_or_else(|| unauthorized("invalid username or password"))
    }

    /// `None` only when `may_hash` is false and the answer needs argon2.
    fn verify(
        &self,
        user_id: &str,
        password: &str,
        peer: SocketAddr,
        may_hash: bool,
    ) -> Option<Result<UserDef>> {
        // The same argon2 work as a wrong password, then the same answer.
        let decoy = || -> Option<Result<UserDef>> {
            if !may_hash {
                return None;
            }
            let _ = verify_password(password, &self.decoy_hash);
            Some(unauthorized("invalid username or password"))
        };
        let Some(user) = self.catalog.user(user_id) else {
            return decoy();
        };
        Some(match &user.password_hash {
            None if user.user_id == ROOT_USER => {
                if peer.ip().is_loopback() && password.is_empty() {
                    Ok(user)
                } else {
                    unauthorized("root has no password and may only log in from loopback")
                }
            }
            None => return decoy(),
            Some(hash) => {
                let fingerprint = self.fingerprint(password);
                let key = (user.user_id.clone(), fingerprint);
                if self.verified.lock().get(&key) == Some(&user.updated_at_ms) {
                    return Some(Ok(user));
                }
                if !may_hash {
                    return None;
                }
                if !verify_password(password, hash) {
                    return Some(unauthorized("invalid username or password"));
                }
                let mut cache = self.verified.lock();
                if cache.len() >= MAX_CACHED_LOGINS {
                    cache.clear();
                }
                cache.insert(key, user.updated_at_ms);
                Ok(user)
            }
        })
    }

    fn fingerprint(&self, password: &str) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(&self.cache_key).expect("HMAC accepts any key length");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Issue a bearer token for a verified user.
    pub fn issue_token(&self, user: &UserDef) -> Result<IssuedToken> {
        let expires_at = now_millis() / 1000 + self.token_ttl_secs;
        let payload = serde_json::to_vec(&TokenPayload {
            sub: user.user_id.clone(),
            exp: expires_at,
            ver: user.updated_at_ms,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let sig = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        Ok(IssuedToken {
            access_token: format!("{payload}.{sig}"),
            expires_at,
        })
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac =
            HmacSha256::new_from_slice(&self.token_key).expect("HMAC accepts any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn check_token(&self, token: &str) -> Result<Principal> {
        let Some((payload_b64, sig_b64)) = token.split_once('.') else {
            return unauthorized("malformed token");
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig_b64) else {
            return unauthorized("malformed token");
        };
        let mut mac =
            HmacSha256::new_from_slice(&self.token_key).expect("HMAC accepts any key length");
        mac.update(payload_b64.as_bytes());
        if mac.verify_slice(&sig).is_err() {
            return unauthorized("invalid token");
        }
        let payload: TokenPayload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::Unauthorized("malformed token".into()))?;
        if payload.exp <= now_millis() / 1000 {
            return unauthorized("token expired; log in again");
        }
        match self.catalog.user(&payload.sub) {
            Some(u) if u.updated_at_ms == payload.ver => Ok(Principal {
                user_id: u.user_id,
                role: u.role,
            }),
            _ => unauthorized("token revoked; log in again"),
        }
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

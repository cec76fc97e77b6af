//! Accounts a request runs as: EXECUTE AS USER, and the per-account locks that keep DROP USER
//! from racing the account's requests.

use kalamdb_core::{Error, Principal, Result, Role};
use std::sync::Arc;

use super::limits::*;
use super::output::*;
use super::router::Engine;

impl Engine {
    /// The caller to run an `EXECUTE AS USER` body as.
    pub(super) fn impersonate(&self, caller: &Caller, user_id: &str) -> Result<Caller> {
        // The caller's own rule first: a `user` asking learns nothing of who exists.
        caller.principal.check_execute_as(Role::User)?;
        let target = self.db.catalog.user(user_id).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "user '{}' does not exist",
                kalamdb_core::truncate_for_message(user_id)
            ))
        })?;
        caller.principal.check_execute_as(target.role)?;
        Ok(Caller {
            principal: Principal {
                user_id: target.user_id,
                role: target.role,
            },
            namespace: caller.namespace.clone(),
            timeout: caller.timeout,
            transaction: None,
        })
    }

    pub(super) fn account_lock(&self, user_id: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut accounts = self.accounts.lock();
        if accounts.len() > 10_000 {
            // Bound memory: drop the locks nobody holds or waits for right now.
            accounts.retain(|_, l| Arc::strong_count(l) > 1);
        }
        accounts.entry(user_id.to_string()).or_default().clone()
    }

    /// Hold `user_id`'s account for a request (shared), once it is sure to exist: a request
    /// authenticated just before its account was dropped is refused here (`missing` makes the
    /// error: UNAUTHORIZED for the caller, INVALID_PARAMETER for an EXECUTE AS target).
    pub(super) async fn hold_account(
        &self,
        user_id: &str,
        missing: fn(String) -> Error,
    ) -> Result<tokio::sync::OwnedRwLockReadGuard<()>> {
        let lock = self.account_lock(user_id);
        let wait = tokio::time::timeout(self.limits.statement_timeout, lock.read_owned());
        let guard = wait
            .await
            .map_err(|_| timed_out(self.limits.statement_timeout))?;
        if self.db.catalog.user(user_id).is_none() {
            return Err(missing(format!(
                "user '{}' does not exist",
                kalamdb_core::truncate_for_message(user_id)
            )));
        }
        Ok(guard)
    }

    /// Hold `user_id`'s account alone (DROP USER): waits for its requests in flight.
    pub(super) async fn hold_account_exclusively(
        &self,
        user_id: &str,
    ) -> Result<tokio::sync::OwnedRwLockWriteGuard<()>> {
        let lock = self.account_lock(user_id);
        tokio::time::timeout(self.limits.statement_timeout, lock.write_owned())
            .await
            .map_err(|_| timed_out(self.limits.statement_timeout))
    }
}

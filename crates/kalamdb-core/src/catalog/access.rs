//! Who may do what: the contract's role rules, in one place.
//!
//! A caller is a [`Principal`] (user id + role). USER and STREAM tables are partitioned by
//! user id, so every role may read and write its *own* partition; reaching another user's
//! partition is only possible through `EXECUTE AS USER`, for `service` and above, as a user of
//! the same role or below. SHARED tables: `public` ones are readable by everyone and writable
//! by `service`+, `private` ones are only for `service`+. SYSTEM tables are read-only and for
//! `dba`+. DDL and user management need `dba`+, and no user manages or grants a role above
//! its own. Flush commands and KILL JOB need `service`+ (KILL of another's job `dba`+). Only
//! `system` touches the server's files and settings. Every entry point asks here.

use crate::catalog::{AccessLevel, Role, TableDef, TableKind};
use crate::encoding::row_key::Scope;
use crate::error::{Error, Result};

/// The identity a statement runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
}

impl Principal {
    /// The partition of `table` this principal's statements read and write.
    pub fn scope_for(&self, table: &TableDef) -> Scope {
        if table.kind.is_per_user() {
            Scope::user(&self.user_id)
        } else {
            Scope::shared()
        }
    }

    pub fn check_read(&self, table: &TableDef) -> Result<()> {
        let ok = match table.kind {
            TableKind::User | TableKind::Stream => true,
            TableKind::Shared => {
                table.access_level() == AccessLevel::Public || self.role >= Role::Service
            }
            TableKind::System => self.role >= Role::Dba,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "role '{}' may not read table '{}'",
                self.role,
                table.qualified_name()
            )))
        }
    }

    pub fn check_write(&self, table: &TableDef) -> Result<()> {
        let ok = match table.kind {
            TableKind::User | TableKind::Stream => true,
            TableKind::Shared => self.role >= Role::Service,
            TableKind::System => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "role '{}' may not write table '{}'",
                self.role,
                table.qualified_name()
            )))
        }
    }

    /// DDL (namespaces, tables) and user management.
    pub fn check_admin(&self, what: &str) -> Result<()> {
        if self.role >= Role::Dba {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "role '{}' may not {what}",
                self.role
            )))
        }
    }

    /// KILL JOB: `service`+ for their own jobs, `dba`+ for anyone's. Another user's job is
    /// not found for a caller below `dba` (its existence is not told).
    pub fn check_kill_job(&self, job_id: &str, created_by: &str) -> Result<()> {
        if self.role < Role::Dba && created_by != self.user_id {
            return Err(Error::JobNotFound(job_id.to_string()));
        }
        if self.role < Role::Service {
            return Err(Error::PermissionDenied(
                "KILL JOB needs the service role or above".into(),
            ));
        }
        Ok(())
    }

    /// STORAGE FLUSH: `service`+.
    pub fn check_flush(&self) -> Result<()> {
        if self.role < Role::Service {
            return Err(Error::PermissionDenied(
                "flush commands need the service role or above".into(),
            ));
        }
        Ok(())
    }

    /// EXECUTE AS USER: `service`+, and only as a user of the same role or below.
    pub fn check_execute_as(&self, target: Role) -> Result<()> {
        if self.role < Role::Service {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not use EXECUTE AS USER",
                self.role
            )));
        }
        if target > self.role {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not act as a user with role '{target}'",
                self.role
            )));
        }
        Ok(())
    }

    /// Changing another user (password, role, DROP USER): not one of a higher role (only
    /// `system` manages `system` users).
    pub fn check_outranks(&self, target: Role) -> Result<()> {
        if target > self.role {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not manage a user with role '{target}'",
                self.role
            )));
        }
        Ok(())
    }

    /// Giving a role (CREATE USER, ALTER USER ... SET ROLE): at most one's own.
    pub fn check_grant(&self, role: Role, what: &str) -> Result<()> {
        if role > self.role {
            return Err(Error::PermissionDenied(format!(
                "role '{}' may not {what} '{role}'",
                self.role
            )));
        }
        Ok(())
    }

    /// Statements that touch the server's files or settings (SET, COPY, external tables).
    pub fn may_touch_server(&self) -> bool {
        self.role == Role::System
    }

    /// Reading `system.<table>`: `jobs` for everyone (see [`Principal::sees_job`]), the
    /// others for `dba`+.
    pub fn check_read_system(&self, table: &str) -> Result<()> {
        if table == "jobs" || self.role >= Role::Dba {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "role '{}' may not read system.{table}",
            self.role
        )))
    }

    /// Which jobs `system.jobs` shows: all of them to `dba`+, below only one's own.
    pub fn sees_job(&self, created_by: &str) -> bool {
        self.role >= Role::Dba || created_by == self.user_id
    }
}

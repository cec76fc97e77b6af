//! CREATE, ALTER and DROP USER.

use kalamdb_core::{
    hash_password, now_millis, validate_user_id, Db, Error, Result, Role, UserDef, ROOT_USER,
};

use super::common::{check_outranks, message, short};
use crate::engine::{Caller, StatementOutput};
use crate::statement::parser::AlterUserOp;

/// CREATE USER (dba+, a role up to one's own).
pub(super) fn create(
    db: &Db,
    caller: &Caller,
    user_id: String,
    password: Option<String>,
    role: Role,
    if_not_exists: bool,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    p.check_admin("create users")?;
    p.check_grant(role, "create a user with role")?;
    validate_user_id(&user_id)?;
    if db.catalog.user(&user_id).is_some() && if_not_exists {
        return Ok(message(format!("User '{user_id}' already exists")));
    }
    let now = now_millis();
    db.catalog.create_user(UserDef {
        user_id: user_id.clone(),
        role,
        password_hash: password.as_deref().map(hash_password).transpose()?,
        created_at_ms: now,
        updated_at_ms: now,
    })?;
    Ok(message(format!("User '{user_id}' created")))
}

/// ALTER USER: one's own password, or (dba+) another's password or role.
pub(super) fn alter(
    db: &Db,
    caller: &Caller,
    user_id: String,
    op: AlterUserOp,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    let mut user = db.catalog.user(&user_id).ok_or_else(|| {
        Error::InvalidParameter(format!("user '{}' does not exist", short(&user_id)))
    })?;
    let own = user_id == p.user_id;
    match op {
        AlterUserOp::Password(pw) => {
            if !own {
                p.check_admin("change other users' passwords")?;
                check_outranks(caller, &user)?;
            }
            user.password_hash = Some(hash_password(&pw)?);
        }
        AlterUserOp::Role(role) => {
            p.check_admin("change roles")?;
            check_outranks(caller, &user)?;
            p.check_grant(role, "grant role")?;
            if user_id == ROOT_USER {
                return Err(Error::InvalidParameter(
                    "the role of root cannot change".into(),
                ));
            }
            user.role = role;
        }
    }
    user.updated_at_ms = now_millis();
    db.catalog.put_user(user)?;
    Ok(message(format!("User '{user_id}' updated")))
}

/// DROP USER (dba+): the account and every row it owned, hot and flushed.
pub(super) fn drop(
    db: &Db,
    caller: &Caller,
    user_id: String,
    if_exists: bool,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    p.check_admin("drop users")?;
    if user_id == ROOT_USER {
        return Err(Error::InvalidParameter("root cannot be dropped".into()));
    }
    match db.catalog.user(&user_id) {
        None if if_exists => Ok(message(format!(
            "User '{}' does not exist",
            short(&user_id)
        ))),
        None => Err(Error::InvalidParameter(format!(
            "user '{}' does not exist",
            short(&user_id)
        ))),
        Some(user) => {
            check_outranks(caller, &user)?;
            db.drop_user(&user_id)?;
            Ok(message(format!(
                "User '{user_id}' dropped with every row it owned"
            )))
        }
    }
}

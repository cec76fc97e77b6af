//! Definitions of the catalog (namespaces, tables and their columns across schema versions,
//! users, storages) and the rules of their names. Pure data: no storage, no role rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{truncate_for_message, Error, Result};
use crate::types::{DataType, Value};

/// The namespace that always exists and holds unqualified tables.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Reserved schema names that are not namespaces.
pub const RESERVED_NAMESPACES: &[&str] = &["system", "information_schema"];
/// The built-in superuser.
pub const ROOT_USER: &str = "root";
/// Name of the hidden row id column of tables without a declared primary key.
pub const ROWID_COLUMN: &str = "_rowid";
/// Longest namespace, table or column name.
pub const MAX_NAME_LEN: usize = 64;

/// Kind of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TableKind {
    User,
    Shared,
    Stream,
    System,
}

impl TableKind {
    /// Whether each user has an isolated partition of the table.
    pub fn is_per_user(&self) -> bool {
        matches!(self, TableKind::User | TableKind::Stream)
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::User => "USER",
            TableKind::Shared => "SHARED",
            TableKind::Stream => "STREAM",
            TableKind::System => "SYSTEM",
        })
    }
}

/// Who may read a SHARED table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Public,
    Private,
}

impl FromStr for AccessLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<AccessLevel> {
        match s.to_ascii_lowercase().as_str() {
            "public" => Ok(AccessLevel::Public),
            "private" => Ok(AccessLevel::Private),
            _ => Err(Error::InvalidParameter(format!(
                "ACCESS_LEVEL must be 'public' or 'private', not '{s}'"
            ))),
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessLevel::Public => "public",
            AccessLevel::Private => "private",
        })
    }
}

/// Role of a user, weakest first; the derived order is the privilege order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Service,
    Dba,
    System,
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "dba" => Ok(Role::Dba),
            "system" => Ok(Role::System),
            _ => Err(Error::InvalidParameter(format!(
                "role must be one of user, service, dba, system; not '{s}'"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        })
    }
}

/// How a column gets a value when an INSERT does not give one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ColumnDefault {
    Now,
    SnowflakeId,
    UuidV7,
    Literal(Value),
}

impl ColumnDefault {
    /// The default as SQL, for DESCRIBE and the catalog tables (`NOW()`, `12.50`,
    /// `DATE '2020-02-01'`, `X'6162'`); `data_type` is its column's.
    pub fn sql(&self, data_type: &crate::types::DataType) -> String {
        match self {
            ColumnDefault::Now => "NOW()".into(),
            ColumnDefault::SnowflakeId => "SNOWFLAKE_ID()".into(),
            ColumnDefault::UuidV7 => "UUID_V7()".into(),
            ColumnDefault::Literal(v) => literal_sql(v, data_type),
        }
    }
}

fn literal_sql(v: &Value, data_type: &crate::types::DataType) -> String {
    use crate::types::DataType;
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match v {
        Value::Null => "NULL".into(),
        Value::Boolean(b) => b.to_string().to_uppercase(),
        Value::SmallInt(x) => x.to_string(),
        Value::Int(x) => x.to_string(),
        Value::BigInt(x) => x.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Decimal(x) => match data_type {
            DataType::Decimal { scale, .. } => decimal_text(*x, *scale),
            _ => x.to_string(),
        },
        Value::Text(s) => quoted(s),
        Value::Bytes(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
        Value::Date(days) => chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(chrono::Duration::days(*days as i64)))
            .map(|d| format!("DATE '{}'", d.format("%Y-%m-%d")))
            .unwrap_or_else(|| days.to_string()),
        Value::Time(micros) => chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            (micros.div_euclid(1_000_000)) as u32,
            (micros.rem_euclid(1_000_000) * 1000) as u32,
        )
        .map(|t| format!("TIME '{}'", t.format("%H:%M:%S%.f")))
        .unwrap_or_else(|| micros.to_string()),
        Value::Timestamp(micros) => match chrono::DateTime::from_timestamp_micros(*micros) {
            Some(t) if *data_type == DataType::TimestampTz => {
                format!(
                    "TIMESTAMPTZ '{}+00'",
                    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f")
                )
            }
            Some(t) => format!(
                "TIMESTAMP '{}'",
                t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f")
            ),
            None => micros.to_string(),
        },
    }
}

/// An unscaled decimal as text: 1250 with scale 2 is `12.50`.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        return (unscaled * 10i128.pow((-scale) as u32)).to_string();
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if unscaled < 0 { "-" } else { "" })
}

/// A column, live or dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id; never reused within a table.
    pub id: u32,
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub default: Option<ColumnDefault>,
    /// Value rows written before this column existed read as (set by ADD COLUMN ... DEFAULT).
    #[serde(default)]
    pub value_for_older_rows: Option<Value>,
    /// Schema version that added the column.
    pub added_in: u32,
    /// Schema version that dropped it, if dropped.
    pub dropped_in: Option<u32>,
}

impl ColumnDef {
    pub fn alive_at(&self, version: u32) -> bool {
        self.added_in <= version && self.dropped_in.is_none_or(|d| d > version)
    }
}

/// Per-table options of `WITH (...)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level: Option<AccessLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A table definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u64,
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    /// Every column ever defined, in declaration order, dropped ones included.
    pub columns: Vec<ColumnDef>,
    /// Declared primary-key column; None means the hidden `_rowid`.
    pub primary_key: Option<String>,
    pub options: TableOptions,
    pub schema_version: u32,
    pub created_at_ms: u64,
}

impl TableDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Columns of the current schema, in order.
    pub fn live_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns_at(self.schema_version)
    }

    /// Columns of the schema at `version`, in the order rows and segments written at that
    /// version store their values: the one definition of a version's layout
    /// ([`crate::encoding::layout`] maps between layouts).
    pub fn columns_at(&self, version: u32) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(move |c| c.alive_at(version))
    }

    /// Column ids of the schema at `version`, in the order rows of that version store them.
    pub fn layout_at(&self, version: u32) -> Vec<u32> {
        self.columns_at(version).map(|c| c.id).collect()
    }

    /// Whether a row version written at `seq` has outlived the table's TTL (STREAM tables):
    /// then it is invisible, whatever the hot buffer still holds.
    pub fn is_expired(&self, seq: u64, now_ms: u64) -> bool {
        match (self.kind, self.options.ttl_seconds) {
            (TableKind::Stream, Some(ttl)) => {
                crate::clock::seq_millis(seq).saturating_add(ttl * 1000) <= now_ms
            }
            _ => false,
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.live_columns().find(|c| c.name == name)
    }

    /// The access level of a SHARED table (private unless declared public).
    pub fn access_level(&self) -> AccessLevel {
        self.options.access_level.unwrap_or(AccessLevel::Private)
    }
}

/// A view: a named query, planned again for each statement that reads it, as its caller
/// (so it never shows more than the caller may read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub namespace: String,
    pub name: String,
    /// The query as written (`SELECT ...`); unqualified names resolve in `namespace`.
    pub sql: String,
    /// The names of its columns when it was created (listings; the query decides at reading).
    pub columns: Vec<String>,
    pub created_by: String,
    pub created_at_ms: u64,
}

impl ViewDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDef {
    pub name: String,
    pub created_at_ms: u64,
}

/// A user account. The password hash never leaves core except to verify a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDef {
    pub user_id: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A storage location for cold data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageDef {
    pub storage_id: String,
    pub storage_type: String,
    pub base_directory: String,
    pub created_at_ms: u64,
}

/// Check a namespace, table or column name: `[a-z_][a-z0-9_]*`, at most 64 characters.
/// Names become storage paths, so nothing else is allowed.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid {kind} name '{}': use 1-{MAX_NAME_LEN} characters of a-z, 0-9 and _, not starting with a digit",
            truncate_for_message(name)
        )))
    }
}

/// Check a user id: 1-64 characters of `A-Za-z0-9_.@-`, not `.` or `..`.
pub fn validate_user_id(user_id: &str) -> Result<()> {
    let ok = !user_id.is_empty()
        && user_id.len() <= MAX_NAME_LEN
        && user_id != "."
        && user_id != ".."
        && user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid user id '{}': use 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ . @ -",
            truncate_for_message(user_id)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_path_are_refused() {
        for bad in ["../x", "a/b", "a\0b", "", "A", "1abc", ".", "a-b"] {
            assert!(validate_name("table", bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["..", ".", "a/b", "a\0", ""] {
            assert!(validate_user_id(bad).is_err(), "{bad:?} accepted");
        }
        validate_name("table", "orders_2025").unwrap();
        validate_user_id("alice.smith@example-1").unwrap();
    }
}

#[cfg(test)]
mod default_sql_tests {
    use super::ColumnDefault;
    use crate::types::{DataType, Value};

    #[test]
    fn literal_defaults_read_as_sql() {
        let sql = |v: Value, t: DataType| ColumnDefault::Literal(v).sql(&t);
        assert_eq!(
            sql(
                Value::Decimal(50),
                DataType::Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            "0.50"
        );
        assert_eq!(
            sql(
                Value::Decimal(-1250),
                DataType::Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            "-12.50"
        );
        assert_eq!(sql(Value::Date(18293), DataType::Date), "DATE '2020-02-01'");
        assert_eq!(
            sql(Value::Time(37_800_000_000), DataType::Time),
            "TIME '10:30:00'"
        );
        assert_eq!(
            sql(Value::Timestamp(1_577_872_800_000_000), DataType::Timestamp),
            "TIMESTAMP '2020-01-01 10:00:00'"
        );
        assert_eq!(
            sql(Value::Bytes(vec![0x61, 0x62]), DataType::Bytea),
            "X'6162'"
        );
        assert_eq!(sql(Value::Text("it's".into()), DataType::Text), "'it''s'");
        assert_eq!(ColumnDefault::Now.sql(&DataType::Timestamp), "NOW()");
    }
}

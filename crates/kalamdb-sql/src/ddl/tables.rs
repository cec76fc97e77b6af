//! CREATE, ALTER, DROP, SHOW and DESCRIBE TABLE.

use kalamdb_core::{
    now_millis, validate_name, value_from_text, AccessLevel, ColumnDef, ColumnDefault, DataType,
    Db, Error, Result, TableDef, TableKind, TableOptions, Value, ROWID_COLUMN,
};

use super::common::{lookup, message, refuse_views, rows, short, yes_no};
use crate::engine::{Caller, StatementOutput};
use crate::statement::parser::{AlterTableOp, ColumnSpec, CreateTable, DefaultSpec, TableName};

/// Longest TTL_SECONDS accepted (10 years).
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// DROP TABLE [IF EXISTS] (dba+): its rows and files go with it.
pub(super) fn drop(
    db: &Db,
    caller: &Caller,
    table: TableName,
    if_exists: bool,
) -> Result<StatementOutput> {
    let p = &caller.principal;
    p.check_admin("drop tables")?;
    let (ns, name) = table.qualified(&caller.namespace);
    match refuse_views(&ns, &name, "dropped") {
        Err(Error::TableNotFound(_)) if if_exists => {
            return Ok(message(format!("Table '{ns}.{name}' does not exist")))
        }
        other => other?,
    }
    if db.catalog.namespace(&ns).is_none() && !if_exists {
        return Err(Error::NamespaceNotFound(ns));
    }
    if db.catalog.view(&ns, &name).is_some() {
        return Err(Error::invalid_sql(format!(
            "'{ns}.{name}' is a view, not a table: use DROP VIEW"
        )));
    }
    let dropped = db.drop_table(&ns, &name, if_exists)?;
    Ok(message(if dropped {
        format!("Table '{ns}.{name}' dropped")
    } else {
        format!("Table '{ns}.{name}' does not exist")
    }))
}

/// SHOW TABLES [IN namespace].
pub(super) fn show(db: &Db, namespace: Option<String>) -> Result<StatementOutput> {
    let tables = match &namespace {
        Some(ns) => {
            if db.catalog.namespace(ns).is_none() {
                return Err(Error::NamespaceNotFound(ns.clone()));
            }
            db.catalog.tables_in(ns)
        }
        None => db.catalog.tables(),
    };
    let views = match &namespace {
        Some(ns) => db.catalog.views_in(ns),
        None => db.catalog.views(),
    };
    let mut listed: Vec<[String; 3]> = tables
        .iter()
        .map(|t| [t.namespace.clone(), t.name.clone(), t.kind.to_string()])
        .chain(
            views
                .iter()
                .map(|v| [v.namespace.clone(), v.name.clone(), "VIEW".to_string()]),
        )
        .collect();
    listed.sort();
    rows(
        &["namespace", "table_name", "table_type"],
        (0..3)
            .map(|i| listed.iter().map(|r| r[i].clone()).collect())
            .collect(),
    )
}

/// DESCRIBE TABLE: its live columns.
pub(super) fn describe(db: &Db, caller: &Caller, table: TableName) -> Result<StatementOutput> {
    let _p = &caller.principal;
    let (ns, name) = table.qualified(&caller.namespace);
    let def = lookup(
        db,
        &ns,
        &name,
        "described with DESCRIBE (query information_schema.columns)",
    )?;
    let cols: Vec<_> = def.live_columns().collect();
    let pk = def.primary_key.as_deref();
    rows(
        &[
            "column_name",
            "data_type",
            "is_nullable",
            "is_primary_key",
            "column_default",
        ],
        vec![
            cols.iter().map(|c| c.name.clone()).collect(),
            cols.iter().map(|c| c.data_type.to_string()).collect(),
            cols.iter().map(|c| yes_no(c.nullable)).collect(),
            cols.iter()
                .map(|c| yes_no(Some(c.name.as_str()) == pk))
                .collect(),
            cols.iter()
                .map(|c| {
                    c.default
                        .as_ref()
                        .map(|d| d.sql(&c.data_type))
                        .unwrap_or_default()
                })
                .collect(),
        ],
    )
}

/// Turn a parsed DEFAULT into the catalog's form, checking it suits the column type.
fn column_default(col: &ColumnSpec) -> Result<Option<ColumnDefault>> {
    let dt = col.data_type;
    let mismatch = |what: &str| {
        Err(Error::TypeMismatch(format!(
            "DEFAULT {what} does not fit column '{}' of type {dt}",
            col.name
        )))
    };
    Ok(match &col.default {
        None | Some(DefaultSpec::Null) => None,
        Some(DefaultSpec::Now) => match dt {
            DataType::Timestamp | DataType::TimestampTz | DataType::Date => {
                Some(ColumnDefault::Now)
            }
            _ => return mismatch("NOW()"),
        },
        Some(DefaultSpec::SnowflakeId) => match dt {
            DataType::BigInt => Some(ColumnDefault::SnowflakeId),
            _ => return mismatch("SNOWFLAKE_ID()"),
        },
        Some(DefaultSpec::UuidV7) => match dt {
            DataType::Uuid | DataType::Text => Some(ColumnDefault::UuidV7),
            _ => return mismatch("UUID_V7()"),
        },
        Some(DefaultSpec::Literal(text)) => {
            Some(ColumnDefault::Literal(value_from_text(text, &dt)?))
        }
        Some(DefaultSpec::Bytes(bytes)) => match dt {
            DataType::Bytea => Some(ColumnDefault::Literal(kalamdb_core::Value::Bytes(
                bytes.clone(),
            ))),
            _ => return mismatch("X'...'"),
        },
    })
}

fn column_def(id: u32, spec: &ColumnSpec, is_pk: bool) -> Result<ColumnDef> {
    validate_name("column", &spec.name)?;
    if spec.name == ROWID_COLUMN {
        return Err(Error::InvalidParameter(format!(
            "column name '{ROWID_COLUMN}' is reserved"
        )));
    }
    Ok(ColumnDef {
        id,
        name: spec.name.clone(),
        data_type: spec.data_type,
        nullable: !(spec.not_null || is_pk),
        default: column_default(spec)?,
        value_for_older_rows: None,
        added_in: 1,
        dropped_in: None,
    })
}

pub(super) fn create_table(db: &Db, caller: &Caller, ct: CreateTable) -> Result<StatementOutput> {
    caller.principal.check_admin("create tables")?;
    let (ns, name) = ct.table.qualified(&caller.namespace);
    if ns == "system" || ns == "information_schema" {
        return Err(Error::InvalidParameter(format!(
            "namespace '{ns}' is reserved"
        )));
    }
    validate_name("table", &name)?;
    if ct.columns.is_empty() {
        return Err(Error::invalid_sql("a table needs at least one column"));
    }
    let mut pk: Option<String> = ct.primary_key.clone();
    for c in &ct.columns {
        if c.primary_key && pk.replace(c.name.clone()).is_some_and(|old| old != c.name) {
            return Err(Error::invalid_sql(
                "a table may have only one PRIMARY KEY column",
            ));
        }
    }
    let mut columns = Vec::with_capacity(ct.columns.len());
    for (i, spec) in ct.columns.iter().enumerate() {
        if ct.columns[..i].iter().any(|c| c.name == spec.name) {
            return Err(Error::invalid_sql(format!(
                "column '{}' is declared twice",
                spec.name
            )));
        }
        let is_pk = pk.as_deref() == Some(spec.name.as_str());
        if is_pk && !spec.data_type.can_be_primary_key() {
            return Err(Error::Unsupported(format!(
                "a {} column cannot be a primary key",
                spec.data_type
            )));
        }
        columns.push(column_def(i as u32 + 1, spec, is_pk)?);
    }
    if let Some(pk) = &pk {
        if !columns.iter().any(|c| &c.name == pk) {
            return Err(Error::invalid_sql(format!(
                "PRIMARY KEY column '{pk}' is not declared"
            )));
        }
    }
    let options = table_options(ct.kind, &ct.options)?;
    let def = TableDef {
        id: 0,
        namespace: ns.clone(),
        name: name.clone(),
        kind: ct.kind,
        columns,
        primary_key: pk,
        options,
        schema_version: 1,
        created_at_ms: 0,
    };
    match db.catalog.create_table(def, ct.if_not_exists)? {
        Some(t) => Ok(message(format!("{} table '{ns}.{name}' created", t.kind))),
        None => Ok(message(format!("Table '{ns}.{name}' already exists"))),
    }
}

/// Validate `WITH (...)` options for a table kind.
fn table_options(kind: TableKind, raw: &[(String, String)]) -> Result<TableOptions> {
    let mut o = TableOptions::default();
    for (k, v) in raw {
        match k.as_str() {
            "FLUSH_POLICY" => {
                if kind == TableKind::Stream {
                    return Err(Error::InvalidParameter(
                        "STREAM tables are never flushed; FLUSH_POLICY does not apply".into(),
                    ));
                }
                kalamdb_core::FlushPolicy::parse(v)?;
                o.flush_policy = Some(v.clone());
            }
            "ACCESS_LEVEL" => {
                if kind != TableKind::Shared {
                    return Err(Error::InvalidParameter(
                        "ACCESS_LEVEL applies to SHARED tables only".into(),
                    ));
                }
                o.access_level = Some(v.parse::<AccessLevel>()?);
            }
            "TTL_SECONDS" => {
                if kind != TableKind::Stream {
                    return Err(Error::InvalidParameter(
                        "TTL_SECONDS applies to STREAM tables only".into(),
                    ));
                }
                let ttl: u64 = v.parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "TTL_SECONDS must be a positive integer, not '{}'",
                        short(v)
                    ))
                })?;
                if ttl == 0 || ttl > MAX_TTL_SECONDS {
                    return Err(Error::InvalidParameter(format!(
                        "TTL_SECONDS must be between 1 and {MAX_TTL_SECONDS}"
                    )));
                }
                o.ttl_seconds = Some(ttl);
            }
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown table option '{}'; known: FLUSH_POLICY, ACCESS_LEVEL, TTL_SECONDS",
                    short(other)
                )))
            }
        }
    }
    if kind == TableKind::Stream && o.ttl_seconds.is_none() {
        return Err(Error::InvalidParameter(
            "STREAM tables need WITH (TTL_SECONDS = n)".into(),
        ));
    }
    Ok(o)
}

pub(super) fn alter_table(
    db: &Db,
    caller: &Caller,
    table: TableName,
    op: AlterTableOp,
) -> Result<StatementOutput> {
    caller.principal.check_admin("alter tables")?;
    let (ns, name) = table.qualified(&caller.namespace);
    lookup(db, &ns, &name, "altered")?;
    match op {
        AlterTableOp::AddColumn {
            spec,
            if_not_exists,
        } => add_column(db, &ns, &name, spec, if_not_exists),
        AlterTableOp::DropColumn {
            name: col,
            if_exists,
        } => drop_column(db, &ns, &name, col, if_exists),
    }
}

/// ALTER TABLE ... ADD COLUMN: a new schema version; rows written before it read the
/// column's DEFAULT (a literal, or the time of the ALTER for NOW()), or NULL.
fn add_column(
    db: &Db,
    ns: &str,
    name: &str,
    spec: ColumnSpec,
    if_not_exists: bool,
) -> Result<StatementOutput> {
    if if_not_exists
        && db
            .catalog
            .table(&ns, &name)
            .is_some_and(|t| t.column(&spec.name).is_some())
    {
        return Ok(message(format!(
            "Column '{}' already exists in '{ns}.{name}'; skipped",
            spec.name
        )));
    }
    if spec.primary_key {
        return Err(Error::Unsupported(
            "ADD COLUMN cannot add a primary key".into(),
        ));
    }
    let def = column_def(0, &spec, false)?;
    if !def.nullable && def.default.is_none() {
        return Err(Error::ConstraintViolation(format!(
            "column '{}' is NOT NULL and has no DEFAULT, so existing rows would break it",
            spec.name
        )));
    }
    db.catalog.alter_table(ns, name, |old| {
        if old.column(&spec.name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "column '{}' already exists in '{ns}.{name}'",
                spec.name
            )));
        }
        let mut new = old.clone();
        let mut col = def.clone();
        col.id = old.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        col.added_in = old.schema_version + 1;
        col.value_for_older_rows = match &col.default {
            Some(ColumnDefault::Literal(v)) => Some(v.clone()),
            Some(ColumnDefault::Now) => Some(now_value(&col.data_type)),
            _ => None,
        };
        if !col.nullable && col.value_for_older_rows.is_none() {
            return Err(Error::ConstraintViolation(format!(
                "column '{}' is NOT NULL but its DEFAULT cannot fill existing rows",
                col.name
            )));
        }
        new.columns.push(col);
        Ok(new)
    })?;
    Ok(message(format!(
        "Column '{}' added to '{ns}.{name}'",
        spec.name
    )))
}

/// ALTER TABLE ... DROP COLUMN: a new schema version in which the column is gone (its values
/// stay in older rows, unread).
fn drop_column(
    db: &Db,
    ns: &str,
    name: &str,
    col: String,
    if_exists: bool,
) -> Result<StatementOutput> {
    let mut missing = false;
    db.catalog.alter_table(ns, name, |old| {
        let Some(c) = old.column(&col) else {
            if if_exists {
                missing = true;
                return Ok(old.clone());
            }
            return Err(Error::InvalidParameter(format!(
                "column '{}' does not exist in '{ns}.{name}'",
                short(&col)
            )));
        };
        if old.primary_key.as_deref() == Some(col.as_str()) {
            return Err(Error::Unsupported(
                "the primary key column cannot be dropped".into(),
            ));
        }
        if old.live_columns().count() == 1 {
            return Err(Error::InvalidParameter(
                "a table must keep at least one column".into(),
            ));
        }
        let id = c.id;
        let mut new = old.clone();
        let version = old.schema_version + 1;
        for c in &mut new.columns {
            if c.id == id {
                c.dropped_in = Some(version);
            }
        }
        Ok(new)
    })?;
    Ok(message(if missing {
        format!("Column '{col}' does not exist in '{ns}.{name}'")
    } else {
        format!("Column '{col}' dropped from '{ns}.{name}'")
    }))
}

fn now_value(dt: &DataType) -> Value {
    let ms = now_millis() as i64;
    match dt {
        DataType::Date => Value::Date((ms / 86_400_000) as i32),
        _ => Value::Timestamp(ms * 1000),
    }
}

//! KalamDB's own statements as the parser hands them to the engine.

use kalamdb_core::{DataType, Role, TableKind};
use sqlparser::tokenizer::TokenWithSpan;

/// `[namespace.]table` as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TableName {
    pub namespace: Option<String>,
    pub name: String,
}

impl TableName {
    /// `(namespace, name)`, the caller's default namespace when none was written.
    pub fn qualified(&self, default_namespace: &str) -> (String, String) {
        let ns = self.namespace.as_deref().unwrap_or(default_namespace);
        (ns.to_string(), self.name.clone())
    }
}

/// A column's DEFAULT clause as written.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultSpec {
    Now,
    SnowflakeId,
    UuidV7,
    Null,
    /// A literal in its SQL text form (strings unquoted).
    Literal(String),
    /// `X'...'`: bytes.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub not_null: bool,
    pub primary_key: bool,
    pub default: Option<DefaultSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub kind: TableKind,
    pub if_not_exists: bool,
    pub table: TableName,
    pub columns: Vec<ColumnSpec>,
    /// From a `PRIMARY KEY (col)` table constraint.
    pub primary_key: Option<String>,
    /// `WITH (KEY = value, ...)`, keys upper-cased, values as text.
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterTableOp {
    /// `ADD [COLUMN] [IF NOT EXISTS] spec`.
    AddColumn {
        spec: ColumnSpec,
        if_not_exists: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterUserOp {
    Password(String),
    Role(Role),
}

/// A statement KalamDB executes itself.
#[derive(Debug, Clone, PartialEq)]
pub enum KalamStatement {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    ShowNamespaces,
    /// `SHOW FUNCTIONS`: every scalar, aggregate and window function, aliases included.
    ShowFunctions,
    CreateTable(CreateTable),
    AlterTable {
        table: TableName,
        op: AlterTableOp,
    },
    DropTable {
        table: TableName,
        if_exists: bool,
    },
    ShowTables {
        namespace: Option<String>,
    },
    DescribeTable {
        table: TableName,
    },
    /// `password: None` creates an account that cannot log in (used through EXECUTE AS only).
    CreateUser {
        user_id: String,
        password: Option<String>,
        role: Role,
        if_not_exists: bool,
    },
    AlterUser {
        user_id: String,
        op: AlterUserOp,
    },
    DropUser {
        user_id: String,
        if_exists: bool,
    },
    /// `EXECUTE AS USER 'u' (<statement>)`; `statement` is the inner SQL text.
    ExecuteAs {
        user_id: String,
        statement: String,
    },
    /// `STORAGE FLUSH TABLE t [WAIT]`.
    FlushTable {
        table: TableName,
        wait: bool,
    },
    /// `STORAGE FLUSH ALL [IN ns] [WAIT]`.
    FlushAll {
        namespace: Option<String>,
        wait: bool,
    },
    /// `KILL JOB 'FL-...'`.
    KillJob {
        job_id: String,
    },
}

impl KalamStatement {
    /// Whether it only reads the catalog (SHOW, DESCRIBE): what may run inside a transaction.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            KalamStatement::ShowNamespaces
                | KalamStatement::ShowFunctions
                | KalamStatement::ShowTables { .. }
                | KalamStatement::DescribeTable { .. }
        )
    }

    /// What kind of statement it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            KalamStatement::CreateNamespace { .. }
            | KalamStatement::DropNamespace { .. }
            | KalamStatement::CreateTable(_)
            | KalamStatement::AlterTable { .. }
            | KalamStatement::DropTable { .. } => "DDL",
            KalamStatement::CreateUser { .. }
            | KalamStatement::AlterUser { .. }
            | KalamStatement::DropUser { .. } => "user management",
            KalamStatement::ExecuteAs { .. } => "EXECUTE AS",
            KalamStatement::FlushTable { .. } | KalamStatement::FlushAll { .. } => "STORAGE FLUSH",
            KalamStatement::KillJob { .. } => "KILL JOB",
            KalamStatement::ShowNamespaces
            | KalamStatement::ShowFunctions
            | KalamStatement::ShowTables { .. }
            | KalamStatement::DescribeTable { .. } => "SHOW",
        }
    }
}

/// One statement, tokenized once: a KalamDB statement, or the tokens for DataFusion's parser.
pub enum Parsed {
    Kalam(KalamStatement),
    Sql(Vec<TokenWithSpan>),
}

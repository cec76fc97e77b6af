//! Tests of the statement parser.
use super::*;

fn parse(sql: &str) -> KalamStatement {
    parse_kalam_statement(sql).unwrap().unwrap()
}

#[test]
fn create_user_table_with_every_clause() {
    let KalamStatement::CreateTable(t) = parse(
        "CREATE USER TABLE IF NOT EXISTS app.msgs (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), \
         body TEXT NOT NULL, price DECIMAL(10,2) DEFAULT '1.50', at TIMESTAMP WITH TIME ZONE DEFAULT NOW()) \
         WITH (FLUSH_POLICY = 'rows:100,interval:60', TTL_SECONDS = 5)",
    ) else {
        panic!()
    };
    assert_eq!(t.kind, TableKind::User);
    assert!(t.if_not_exists);
    assert_eq!(
        t.table,
        TableName {
            namespace: Some("app".into()),
            name: "msgs".into()
        }
    );
    assert_eq!(t.columns.len(), 4);
    assert!(t.columns[0].primary_key);
    assert_eq!(t.columns[0].default, Some(DefaultSpec::SnowflakeId));
    assert!(t.columns[1].not_null);
    assert_eq!(
        t.columns[2].data_type,
        DataType::Decimal {
            precision: 10,
            scale: 2
        }
    );
    assert_eq!(t.columns[3].data_type, DataType::TimestampTz);
    assert_eq!(
        t.options[0],
        ("FLUSH_POLICY".into(), "rows:100,interval:60".into())
    );
}

#[test]
fn plain_create_table_is_shared() {
    let KalamStatement::CreateTable(t) = parse("CREATE TABLE t1(a INTEGER, b TEXT)") else {
        panic!()
    };
    assert_eq!(t.kind, TableKind::Shared);
    assert_eq!(t.primary_key, None);
}

#[test]
fn queries_and_dml_are_left_to_datafusion() {
    for sql in [
        "SELECT 1",
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ] {
        assert_eq!(parse_kalam_statement(sql).unwrap(), None, "{sql}");
    }
}

#[test]
fn execute_as_takes_the_inner_statement() {
    assert_eq!(
        parse("EXECUTE AS USER 'alice' (SELECT * FROM t WHERE x IN (1, 2));"),
        KalamStatement::ExecuteAs {
            user_id: "alice".into(),
            statement: "SELECT * FROM t WHERE x IN (1, 2)".into()
        }
    );
}

#[test]
fn users_and_roles() {
    assert_eq!(
        parse("CREATE USER 'bob' WITH PASSWORD 'pw' ROLE service"),
        KalamStatement::CreateUser {
            user_id: "bob".into(),
            password: Some("pw".into()),
            role: Role::Service,
            if_not_exists: false
        }
    );
    assert_eq!(
        parse("CREATE USER 'carol' ROLE user"),
        KalamStatement::CreateUser {
            user_id: "carol".into(),
            password: None,
            role: Role::User,
            if_not_exists: false
        }
    );
    assert_eq!(
        parse("ALTER USER 'bob' SET ROLE dba"),
        KalamStatement::AlterUser {
            user_id: "bob".into(),
            op: AlterUserOp::Role(Role::Dba)
        }
    );
}

#[test]
fn storage_and_job_commands() {
    assert_eq!(
        parse("STORAGE FLUSH TABLE app.t WAIT"),
        KalamStatement::FlushTable {
            table: TableName {
                namespace: Some("app".into()),
                name: "t".into()
            },
            wait: true
        }
    );
    assert_eq!(
        parse("STORAGE FLUSH ALL IN app"),
        KalamStatement::FlushAll {
            namespace: Some("app".into()),
            wait: false
        }
    );
    assert_eq!(
        parse("STORAGE FLUSH ALL IN app WAIT"),
        KalamStatement::FlushAll {
            namespace: Some("app".into()),
            wait: true
        }
    );
    assert_eq!(
        parse("KILL JOB 'FL-0123456789ab'"),
        KalamStatement::KillJob {
            job_id: "FL-0123456789ab".into()
        }
    );
}

#[test]
fn bad_input_is_invalid_sql_not_a_panic() {
    for sql in [
        "CREATE TABLE",
        "CREATE TABLE t (",
        "CREATE TABLE t (a NOPE)",
        "ALTER TABLE t RENAME x",
        "DROP NAMESPACE",
    ] {
        assert!(parse_kalam_statement(sql).is_err(), "{sql}");
    }
}

//! The contract's allow/deny rules as a table: roles x table kinds x statements.

use kalamdb_tests::{Auth, TestServer};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    User,
    Service,
    Dba,
    System,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    User,
    SharedPublic,
    SharedPrivate,
    Stream,
    System,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stmt {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
    Flush,
    KillJob,
    ExecuteAs,
}

/// Expected HTTP status.
fn expected(role: Role, kind: Kind, stmt: Stmt) -> u16 {
    use Kind as K;
    use Role as R;
    let service_up = role != R::User;
    let dba_up = matches!(role, R::Dba | R::System);
    let allow = |ok: bool| if ok { 200 } else { 403 };
    match stmt {
        Stmt::Select => match kind {
            K::User | K::Stream | K::SharedPublic => 200,
            K::SharedPrivate => allow(service_up),
            K::System => allow(dba_up),
        },
        Stmt::Insert | Stmt::Update | Stmt::Delete => match kind {
            K::User | K::Stream => 200,
            K::SharedPublic | K::SharedPrivate => allow(service_up),
            K::System => 403,
        },
        Stmt::Ddl => match kind {
            K::System if dba_up => 400, // system tables cannot be altered
            K::System => 403,
            _ => allow(dba_up),
        },
        Stmt::Flush => match kind {
            _ if !service_up => 403,
            K::Stream => 400,        // UNSUPPORTED
            K::System => 404,        // not a flushable table
            _ => 200,
        },
        // The job was created by root: below dba it is invisible.
        Stmt::KillJob => if dba_up { 200 } else { 404 },
        // EXECUTE AS a `user`-role account, reading the table as that user.
        Stmt::ExecuteAs => {
            if !service_up {
                403
            } else {
                expected(R::User, kind, Stmt::Select)
            }
        }
    }
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "app.u",
        Kind::SharedPublic => "app.pub",
        Kind::SharedPrivate => "app.priv",
        Kind::Stream => "app.ev",
        Kind::System => "system.tables",
    }
}

/// `n` makes every INSERT key and added column name unique across the matrix.
fn sql(kind: Kind, stmt: Stmt, job_id: &str, n: usize) -> String {
    let t = table(kind);
    let (ins, upd, del) = if kind == Kind::System {
        (format!("INSERT INTO {t} (namespace) VALUES ('x')"), format!("UPDATE {t} SET namespace = 'x'"), format!("DELETE FROM {t}"))
    } else {
        (format!("INSERT INTO {t} (id, v) VALUES ({}, 'x')", 1000 + n), format!("UPDATE {t} SET v = 'y' WHERE id = 1"), format!("DELETE FROM {t} WHERE id = 1"))
    };
    match stmt {
        Stmt::Select => format!("SELECT * FROM {t}"),
        Stmt::Insert => ins,
        Stmt::Update => upd,
        Stmt::Delete => del,
        Stmt::Ddl => format!("ALTER TABLE {t} ADD COLUMN extra_{n} INT"),
        Stmt::Flush => format!("STORAGE FLUSH TABLE {t}"),
        Stmt::KillJob => format!("KILL JOB '{job_id}'"),
        Stmt::ExecuteAs => format!("EXECUTE AS USER 'plain' (SELECT * FROM {t})"),
    }
}

#[test]
fn roles_kinds_and_statements_follow_the_contract() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.u (id INT PRIMARY KEY, v TEXT)");
    s.root("CREATE SHARED TABLE app.pub (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'public')");
    s.root("CREATE SHARED TABLE app.priv (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'private')");
    s.root("CREATE STREAM TABLE app.ev (id INT PRIMARY KEY, v TEXT) WITH (TTL_SECONDS = 3600)");
    s.root("CREATE SHARED TABLE app.k (id INT PRIMARY KEY)");
    s.create_user("plain", "user");
    let auths = [
        (Role::User, s.create_user("r_user", "user")),
        (Role::Service, s.create_user("r_service", "service")),
        (Role::Dba, s.create_user("r_dba", "dba")),
        (Role::System, Auth::root()),
    ];
    let kinds = [Kind::User, Kind::SharedPublic, Kind::SharedPrivate, Kind::Stream, Kind::System];
    let stmts = [Stmt::Select, Stmt::Insert, Stmt::Update, Stmt::Delete, Stmt::Ddl, Stmt::Flush, Stmt::KillJob, Stmt::ExecuteAs];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (role, auth) in &auths {
        for kind in kinds {
            for stmt in stmts {
                // A job created by root, for KILL JOB (finished jobs answer too).
                // (On a table only root flushes, so the id is never another caller's running job.)
                let job = s.root("STORAGE FLUSH TABLE app.k").body["results"][0]["job_id"].as_str().unwrap().to_string();
                let q = sql(kind, stmt, &job, checked);
                let r = s.sql_as(auth, &q);
                let want = expected(*role, kind, stmt);
                checked += 1;
                if r.status != want {
                    failures.push(format!("{role:?} {kind:?} {stmt:?}: want {want}, got {} {} ({q})", r.status, r.code()));
                }
                if want == 403 && r.code() != "PERMISSION_DENIED" {
                    failures.push(format!("{role:?} {kind:?} {stmt:?}: 403 without PERMISSION_DENIED"));
                }
            }
        }
    }
    assert_eq!(checked, 4 * 5 * 8);
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

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
}

/// Expected HTTP status and error code ("" for success) of `stmt` on `kind` by `role`.
fn expected(role: Role, kind: Kind, stmt: Stmt) -> (u16, &'static str) {
    use Kind as K;
    use Role as R;
    let service_up = role != R::User;
    let dba_up = matches!(role, R::Dba | R::System);
    const OK: (u16, &str) = (200, "");
    const DENIED: (u16, &str) = (403, "PERMISSION_DENIED");
    let allow = |ok: bool| if ok { OK } else { DENIED };
    match stmt {
        Stmt::Select => match kind {
            K::User | K::Stream | K::SharedPublic => OK,
            K::SharedPrivate => allow(service_up),
            K::System => allow(dba_up),
        },
        Stmt::Insert | Stmt::Update | Stmt::Delete => match kind {
            K::User | K::Stream => OK,
            K::SharedPublic | K::SharedPrivate => allow(service_up),
            K::System => DENIED,
        },
        Stmt::Ddl => match kind {
            K::System if dba_up => (400, "UNSUPPORTED"), // system tables cannot be altered
            K::System => DENIED,
            _ => allow(dba_up),
        },
        Stmt::Flush => match kind {
            _ if !service_up => DENIED,
            K::Stream => (400, "UNSUPPORTED"),
            K::System => (400, "UNSUPPORTED"), // system tables are never flushed
            _ => OK,
        },
        // The job was created by root: below dba it is invisible.
        Stmt::KillJob => {
            if dba_up {
                OK
            } else {
                (404, "JOB_NOT_FOUND")
            }
        }
    }
}

/// The same through `EXECUTE AS USER 'plain' (...)` (a `user`-role account): only service and
/// up may act as another user, and then the statement is allowed exactly as it is to `plain`.
fn expected_as_plain(role: Role, kind: Kind, stmt: Stmt) -> (u16, &'static str) {
    if role == Role::User {
        (403, "PERMISSION_DENIED")
    } else {
        expected(Role::User, kind, stmt)
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

/// `n` makes every key and added column name unique across the matrix; UPDATE and DELETE
/// target the row `n` (seeded before them, so a success changes exactly one row).
fn sql(kind: Kind, stmt: Stmt, job_id: &str, n: usize) -> String {
    let t = table(kind);
    let id = 1000 + n;
    let (ins, upd, del) = if kind == Kind::System {
        (
            format!("INSERT INTO {t} (namespace) VALUES ('x')"),
            format!("UPDATE {t} SET namespace = 'x'"),
            format!("DELETE FROM {t}"),
        )
    } else {
        (
            format!("INSERT INTO {t} (id, v) VALUES ({id}, 'x')"),
            format!("UPDATE {t} SET v = 'y' WHERE id = {id}"),
            format!("DELETE FROM {t} WHERE id = {id}"),
        )
    };
    match stmt {
        Stmt::Select => format!("SELECT * FROM {t}"),
        Stmt::Insert => ins,
        Stmt::Update => upd,
        Stmt::Delete => del,
        Stmt::Ddl => format!("ALTER TABLE {t} ADD COLUMN extra_{n} INT"),
        Stmt::Flush => format!("STORAGE FLUSH TABLE {t}"),
        Stmt::KillJob => format!("KILL JOB '{job_id}'"),
    }
}

/// What `v` of row `id` of `kind` holds for `owner` (None: no such row).
fn value_of(s: &TestServer, owner: &Auth, kind: Kind, id: usize) -> Option<String> {
    let t = table(kind);
    // Shared tables are one scope (root reads every one); user and stream tables are read as
    // their owner.
    let reader = if matches!(kind, Kind::SharedPublic | Kind::SharedPrivate) {
        &Auth::root()
    } else {
        owner
    };
    let r = s
        .sql_as(reader, &format!("SELECT v FROM {t} WHERE id = {id}"))
        .ok();
    r.rows(0)
        .first()
        .map(|row| row[0].as_str().unwrap_or("").to_string())
}

#[test]
fn roles_kinds_and_statements_follow_the_contract() {
    let s = TestServer::start();
    s.root("CREATE NAMESPACE app");
    s.root("CREATE USER TABLE app.u (id INT PRIMARY KEY, v TEXT)");
    s.root(
        "CREATE SHARED TABLE app.pub (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'public')",
    );
    s.root(
        "CREATE SHARED TABLE app.priv (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'private')",
    );
    s.root("CREATE STREAM TABLE app.ev (id INT PRIMARY KEY, v TEXT) WITH (TTL_SECONDS = 3600)");
    s.root("CREATE SHARED TABLE app.k (id INT PRIMARY KEY)");
    let plain = s.create_user("plain", "user");
    let auths = [
        (Role::User, s.create_user("r_user", "user")),
        (Role::Service, s.create_user("r_service", "service")),
        (Role::Dba, s.create_user("r_dba", "dba")),
        (Role::System, Auth::root()),
    ];
    let kinds = [
        Kind::User,
        Kind::SharedPublic,
        Kind::SharedPrivate,
        Kind::Stream,
        Kind::System,
    ];
    let stmts = [
        Stmt::Select,
        Stmt::Insert,
        Stmt::Update,
        Stmt::Delete,
        Stmt::Ddl,
        Stmt::Flush,
        Stmt::KillJob,
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (role, auth) in &auths {
        for kind in kinds {
            for stmt in stmts {
                for via_execute_as in [false, true] {
                    let n = checked;
                    checked += 1;
                    // Whose row an UPDATE/DELETE reaches: the caller's, or plain's through
                    // EXECUTE AS; seeded by its owner (root for the shared tables).
                    let owner = if via_execute_as { &plain } else { auth };
                    let seeded =
                        matches!(stmt, Stmt::Update | Stmt::Delete) && kind != Kind::System;
                    if seeded {
                        let seeder = if matches!(kind, Kind::SharedPublic | Kind::SharedPrivate) {
                            &Auth::root()
                        } else {
                            owner
                        };
                        s.sql_as(
                            seeder,
                            &format!(
                                "INSERT INTO {} (id, v) VALUES ({}, 'x')",
                                table(kind),
                                1000 + n
                            ),
                        )
                        .ok();
                    }
                    // A job created by root, for KILL JOB (finished jobs answer too).
                    // (On a table only root flushes, so the id is never another caller's running job.)
                    let job = s.root("STORAGE FLUSH TABLE app.k").body["results"][0]["job_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let inner = sql(kind, stmt, &job, n);
                    let (q, want) = if via_execute_as {
                        (
                            format!("EXECUTE AS USER 'plain' ({inner})"),
                            expected_as_plain(*role, kind, stmt),
                        )
                    } else {
                        (inner, expected(*role, kind, stmt))
                    };
                    let r = s.sql_as(auth, &q);
                    let what = format!(
                        "{role:?} {kind:?} {stmt:?}{}",
                        if via_execute_as { " as plain" } else { "" }
                    );
                    if (r.status, r.code()) != want {
                        failures.push(format!(
                            "{what}: want {want:?}, got {} {} ({q}): {}",
                            r.status,
                            r.code(),
                            r.body
                        ));
                        continue;
                    }
                    if !seeded {
                        continue;
                    }
                    // The row: changed exactly once when allowed, untouched when refused.
                    let now = value_of(&s, owner, kind, 1000 + n);
                    let expect_now = match (want.0, stmt) {
                        (200, Stmt::Update) => Some("y".to_string()),
                        (200, _) => None,
                        _ => Some("x".to_string()),
                    };
                    if want.0 == 200 && r.body["results"][0]["row_count"] != 1 {
                        failures.push(format!(
                            "{what}: reported {} rows, not 1 ({q})",
                            r.body["results"][0]["row_count"]
                        ));
                    }
                    if now != expect_now {
                        failures.push(format!(
                            "{what}: row {} holds {now:?}, want {expect_now:?} ({q})",
                            1000 + n
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(checked, 4 * 5 * 7 * 2);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

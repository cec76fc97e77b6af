//! The conformance suite's runner: `tests/slt/*.slt` (the sqllogictest format) through the
//! `sqllogictest` crate, against the real server over HTTP.
//!
//! Every file runs in three [`Mode`]s, which must all give the file's expected output:
//! - `hot`: every row stays in the hot buffer;
//! - `flushed`: after every INSERT/UPDATE/DELETE, `STORAGE FLUSH ALL IN <ns> WAIT` moves the
//!   rows to Parquet (each job must complete, for every user);
//! - `restarted`: the server is restarted (SIGTERM, clean exit, start) at the end of setup,
//!   that is before the file's first query.
//!
//! and in two [`Variant`]s of its tables: `shared` (`CREATE TABLE` makes a SHARED table) and
//! `user` (`CREATE TABLE` becomes `CREATE USER TABLE`, and every query and DML statement runs
//! once as each of two users, who must get identical answers: each sees exactly its own rows).
//! A file whose first lines hold `# kalamdb: shared-only` (it reads system tables, say) skips
//! the user variant.
//!
//! Conventions for the files (tests/slt/README.md): unqualified table names (each run gets
//! its own namespace), `rowsort` unless the query orders its rows, errors written as
//! `statement error CODE` / `query error CODE` (the runner reports `CODE: message`). Values:
//! NULL is `NULL`, an empty string `(empty)`, floats rounded to 12 significant digits. Column
//! types: `I` integers, `R` REAL/DOUBLE/DECIMAL, `B` BOOLEAN, `D` dates, times and
//! timestamps, `T` text (TEXT, JSON, UUID, BYTEA), `?` anything else. A 500 is never an
//! expected answer: any INTERNAL_ERROR fails the file.

use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqllogictest::{ColumnType, DBOutput, Record};

use crate::{Auth, TestServer, ROOT_PASSWORD};

/// Where the rows are when the file's queries run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hot,
    Flushed,
    Restarted,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Hot, Mode::Flushed, Mode::Restarted];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Hot => "hot",
            Mode::Flushed => "flushed",
            Mode::Restarted => "restarted",
        }
    }
}

/// Which kind of table a plain `CREATE TABLE` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Shared,
    User,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Shared, Variant::User];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Shared => "shared",
            Variant::User => "user",
        }
    }
}

/// The users a run's statements are sent as (dba: they may create tables; USER tables give
/// each its own partition).
pub const SLT_USERS: [&str; 2] = ["slt_alice", "slt_bob"];

/// What one file run did.
#[derive(Debug, Default, Clone)]
pub struct FileOutcome {
    pub queries: usize,
    pub statements: usize,
    /// Every failed record, with its location.
    pub failures: Vec<String>,
    /// True when the file does not run in this variant.
    pub skipped: bool,
}

/// A column type letter (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KType {
    Integer,
    Real,
    Boolean,
    DateTime,
    Text,
    Other,
}

impl ColumnType for KType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'I' => KType::Integer,
            'R' => KType::Real,
            'B' => KType::Boolean,
            'D' => KType::DateTime,
            'T' => KType::Text,
            _ => KType::Other,
        })
    }

    fn to_char(&self) -> char {
        match self {
            KType::Integer => 'I',
            KType::Real => 'R',
            KType::Boolean => 'B',
            KType::DateTime => 'D',
            KType::Text => 'T',
            KType::Other => '?',
        }
    }
}

fn ktype(data_type: &str) -> KType {
    match data_type {
        "SMALLINT" | "INT" | "BIGINT" => KType::Integer,
        "REAL" | "DOUBLE" => KType::Real,
        t if t.starts_with("DECIMAL") => KType::Real,
        "BOOLEAN" => KType::Boolean,
        "DATE" | "TIME" | "TIMESTAMP" | "TIMESTAMPTZ" => KType::DateTime,
        "TEXT" | "JSON" | "UUID" | "BYTEA" => KType::Text,
        _ => KType::Other,
    }
}

/// A record's failure as the test shows it.
#[derive(Debug, Clone)]
pub struct SltError(pub String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// What the statement is, for routing (run once, or once per user) and for flushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementKind {
    /// CREATE/DROP/ALTER, STORAGE, KILL, EXECUTE AS: run once, as the first user.
    Once,
    /// INSERT/UPDATE/DELETE: once per user, then a flush in the flushed mode.
    Dml,
    /// Everything else: once per user.
    Query,
}

fn first_word(sql: &str) -> String {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else if let Some(r) = rest.strip_prefix('(') {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn kind_of(sql: &str) -> StatementKind {
    match first_word(sql).as_str() {
        // A transaction's record writes as a DML statement does (and is flushed after it).
        "INSERT" | "UPDATE" | "DELETE" | "BEGIN" | "START" => StatementKind::Dml,
        "CREATE" | "DROP" | "ALTER" | "STORAGE" | "KILL" | "EXECUTE" => StatementKind::Once,
        _ => StatementKind::Query,
    }
}

/// In the user variant, a plain `CREATE TABLE` makes a USER table.
fn for_variant(sql: &str, variant: Variant) -> String {
    if variant == Variant::Shared {
        return sql.to_string();
    }
    let trimmed = sql.trim_start();
    let mut words = trimmed.split_whitespace();
    let (Some(a), Some(b)) = (words.next(), words.next()) else {
        return sql.to_string();
    };
    if a.eq_ignore_ascii_case("CREATE") && b.eq_ignore_ascii_case("TABLE") {
        let after_create = &trimmed[a.len()..];
        return format!("CREATE USER{after_create}");
    }
    sql.to_string()
}

/// One connection of the runner: the server's current port, the run's namespace and users.
#[derive(Clone)]
pub struct SltDb {
    port: Arc<AtomicU16>,
    namespace: String,
    mode: Mode,
    users: Vec<&'static str>,
    internal_errors: Arc<AtomicUsize>,
}

/// One statement's outcome as the runner compares it.
type Outcome = Result<DBOutput<KType>, SltError>;

impl SltDb {
    fn post(&self, auth: &Auth, sql: &str) -> Result<(u16, Value), SltError> {
        let port = self.port.load(Ordering::SeqCst);
        let server = TestServer::attach(port);
        let body = json!({"sql": sql, "namespace": self.namespace}).to_string();
        let resp = server
            .try_post("/v1/api/sql", auth, body.as_bytes())
            .map_err(SltError)?;
        Ok((resp.status, resp.body))
    }

    fn exec(&self, user: &str, sql: &str) -> Outcome {
        let auth = Auth::user(user, &format!("{user}-pw"));
        let (status, body) = self.post(&auth, sql)?;
        if status != 200 || body["status"] != "success" {
            let code = body["error"]["code"].as_str().unwrap_or("NO_CODE");
            let message = body["error"]["message"].as_str().unwrap_or("");
            if status >= 500 || code == "INTERNAL_ERROR" {
                self.internal_errors.fetch_add(1, Ordering::SeqCst);
            }
            return Err(SltError(format!("{code}: {message} (HTTP {status})")));
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        let Some(last) = results.last() else {
            return Err(SltError(format!("a success without results: {body}")));
        };
        match (last["schema"].as_array(), last["rows"].as_array()) {
            (Some(schema), Some(rows)) => {
                let types: Vec<KType> = schema
                    .iter()
                    .map(|f| ktype(f["data_type"].as_str().unwrap_or("")))
                    .collect();
                let rows = rows
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .map(|cells| {
                                cells
                                    .iter()
                                    .zip(&types)
                                    .map(|(v, t)| render(v, t))
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                Ok(DBOutput::Rows { types, rows })
            }
            _ => Ok(DBOutput::StatementComplete(
                last["row_count"].as_u64().unwrap_or(0),
            )),
        }
    }

    /// `STORAGE FLUSH ALL IN <ns> WAIT` as root; every job must complete for every user.
    fn flush(&self) -> Result<(), SltError> {
        let sql = format!("STORAGE FLUSH ALL IN {} WAIT", self.namespace);
        let (status, body) = self.post(&Auth::Basic("root".into(), ROOT_PASSWORD.into()), &sql)?;
        if status != 200 {
            return Err(SltError(format!("flush failed: HTTP {status}: {body}")));
        }
        let result = &body["results"][0];
        let names: Vec<&str> = result["schema"]
            .as_array()
            .map(|s| s.iter().map(|f| f["name"].as_str().unwrap_or("")).collect())
            .unwrap_or_default();
        let col = |name: &str| names.iter().position(|n| *n == name);
        for row in result["rows"].as_array().cloned().unwrap_or_default() {
            let status = col("status").map(|i| row[i].clone()).unwrap_or(Value::Null);
            let outcome = col("result")
                .and_then(|i| row[i].as_str().map(str::to_string))
                .unwrap_or_default();
            let failed = serde_json::from_str::<Value>(&outcome)
                .ok()
                .and_then(|r| r["users_failed"].as_u64());
            if status != "completed" || failed != Some(0) {
                return Err(SltError(format!(
                    "a flush job did not complete cleanly: {row}"
                )));
            }
        }
        Ok(())
    }
}

/// The runner's text of one JSON value (see the module docs).
fn render(v: &Value, t: &KType) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if *t == KType::Real || n.is_f64() => match n.as_f64() {
            Some(x) => float_text(x),
            None => n.to_string(),
        },
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A float rounded to 12 significant digits, in its shortest form: sums of floats may round
/// differently when rows arrive in a different order (hot or flushed), answers must not.
pub fn float_text(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    if rounded == 0.0 {
        return "0".into();
    }
    rounded.to_string()
}

/// Compare what two users got; they must agree exactly (rows compared as multisets, the
/// runner checks the order against the file).
fn agree(first: &Outcome, other: &Outcome, users: (&str, &str)) -> Result<(), SltError> {
    let same = match (first, other) {
        (
            Ok(DBOutput::Rows {
                types: t1,
                rows: r1,
            }),
            Ok(DBOutput::Rows {
                types: t2,
                rows: r2,
            }),
        ) => {
            let mut a = r1.clone();
            let mut b = r2.clone();
            a.sort();
            b.sort();
            t1 == t2 && a == b
        }
        (Ok(DBOutput::StatementComplete(a)), Ok(DBOutput::StatementComplete(b))) => a == b,
        (Err(a), Err(b)) => a.0.split(':').next() == b.0.split(':').next(),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(SltError(format!(
            "the users' answers differ (user-table isolation): {}: {}; {}: {}",
            users.0,
            describe(first),
            users.1,
            describe(other)
        )))
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Ok(DBOutput::Rows { rows, .. }) => format!(
            "{} row(s) {:?}",
            rows.len(),
            rows.iter().take(5).collect::<Vec<_>>()
        ),
        Ok(DBOutput::StatementComplete(n)) => format!("{n} row(s) affected"),
        Ok(_) => "another output".into(),
        Err(e) => format!("error {e}"),
    }
}

impl sqllogictest::DB for SltDb {
    type Error = SltError;
    type ColumnType = KType;

    fn run(&mut self, sql: &str) -> Outcome {
        let kind = kind_of(sql);
        let first_user = self.users[0];
        let result = self.exec(first_user, sql);
        if kind != StatementKind::Once {
            for user in self.users.iter().skip(1) {
                let other = self.exec(user, sql);
                agree(&result, &other, (first_user, user))?;
            }
        }
        if kind == StatementKind::Dml && self.mode == Mode::Flushed && result.is_ok() {
            self.flush()?;
        }
        result
    }

    fn engine_name(&self) -> &str {
        "kalamdb"
    }
}

/// Make the suite's users (dba) on a server, once.
pub fn create_users(server: &TestServer) {
    for u in SLT_USERS {
        server.root(&format!(
            "CREATE USER IF NOT EXISTS '{u}' WITH PASSWORD '{u}-pw' ROLE dba"
        ));
    }
}

/// Does the file opt out of the user variant?
fn shared_only(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .take(10)
                .any(|l| l.trim() == "# kalamdb: shared-only")
        })
        .unwrap_or(false)
}

/// A namespace name for one run of one file.
fn namespace_for(path: &Path, mode: Mode, variant: Variant) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("slt_{stem}_{}_{}", mode.name(), variant.name())
}

/// Run one file in one mode and variant on `server` (whose users exist: [`create_users`]).
/// With `complete`, the file's expected results are rewritten from the actual output instead
/// (for writing new cases; review every rewritten answer).
pub fn run_file(
    server: &mut TestServer,
    path: &Path,
    mode: Mode,
    variant: Variant,
    complete: bool,
) -> FileOutcome {
    let mut outcome = FileOutcome::default();
    if variant == Variant::User && shared_only(path) {
        outcome.skipped = true;
        return outcome;
    }
    let ns = namespace_for(path, mode, variant);
    server.root(&format!("DROP NAMESPACE IF EXISTS {ns} CASCADE"));
    server.root(&format!("CREATE NAMESPACE {ns}"));
    let port = Arc::new(AtomicU16::new(server.port));
    let internal_errors = Arc::new(AtomicUsize::new(0));
    let users: Vec<&'static str> = match variant {
        Variant::Shared => vec![SLT_USERS[0]],
        Variant::User => SLT_USERS.to_vec(),
    };
    let db = SltDb {
        port: port.clone(),
        namespace: ns.clone(),
        mode,
        users,
        internal_errors: internal_errors.clone(),
    };
    let make = {
        let db = db.clone();
        move || {
            let db = db.clone();
            async move { Ok::<_, SltError>(RewritingDb { inner: db, variant }) }
        }
    };
    let mut runner = sqllogictest::Runner::new(make);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    if complete {
        let r = futures_lite_block_on(runner.update_test_file(
            path,
            " ",
            sqllogictest::default_validator,
            sqllogictest::default_normalizer,
            sqllogictest::strict_column_validator,
        ));
        if let Err(e) = r {
            outcome
                .failures
                .push(format!("{}: completion failed: {e}", path.display()));
        }
        return outcome;
    }
    let records = match sqllogictest::parse_file::<KType>(path) {
        Ok(r) => r,
        Err(e) => {
            outcome
                .failures
                .push(format!("{}: cannot parse: {e}", path.display()));
            return outcome;
        }
    };
    let mut seen_statement = false;
    let mut restarted = false;
    for record in records {
        match &record {
            Record::Statement { .. } => {
                outcome.statements += 1;
                seen_statement = true;
            }
            Record::Query { .. } => {
                if mode == Mode::Restarted && seen_statement && !restarted {
                    let clean = server.stop_gracefully();
                    if !clean {
                        outcome.failures.push(format!(
                            "{}: the server did not exit cleanly on SIGTERM",
                            path.display()
                        ));
                    }
                    server.start_again();
                    port.store(server.port, Ordering::SeqCst);
                    restarted = true;
                }
                outcome.queries += 1;
            }
            Record::Halt { .. } => break,
            _ => {}
        }
        if let Err(e) = runner.run(record) {
            outcome.failures.push(format!(
                "[{} {}] {}",
                mode.name(),
                variant.name(),
                e.display(false)
            ));
        }
    }
    let n = internal_errors.load(Ordering::SeqCst);
    if n > 0 {
        outcome.failures.push(format!(
            "[{} {}] {}: {n} statement(s) answered INTERNAL_ERROR (a 500 is always a bug)",
            mode.name(),
            variant.name(),
            path.display()
        ));
    }
    outcome
}

/// The connection the runner holds: rewrites `CREATE TABLE` for the variant, then [`SltDb`].
struct RewritingDb {
    inner: SltDb,
    variant: Variant,
}

impl sqllogictest::DB for RewritingDb {
    type Error = SltError;
    type ColumnType = KType;

    fn run(&mut self, sql: &str) -> Outcome {
        let sql = for_variant(sql, self.variant);
        sqllogictest::DB::run(&mut self.inner, &sql)
    }

    fn engine_name(&self) -> &str {
        "kalamdb"
    }
}

/// Run a future to completion on this thread (the runner's DB is synchronous).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every `.slt` file under `dir`, sorted.
pub fn slt_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "slt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_routed_by_their_first_word() {
        assert_eq!(kind_of("  insert into t values (1)"), StatementKind::Dml);
        assert_eq!(kind_of("-- c\nUPDATE t SET a = 1"), StatementKind::Dml);
        assert_eq!(kind_of("/* x */ delete from t"), StatementKind::Dml);
        assert_eq!(kind_of("CREATE TABLE t (a INT)"), StatementKind::Once);
        assert_eq!(kind_of("(SELECT 1)"), StatementKind::Query);
        assert_eq!(
            kind_of("with x as (select 1) select * from x"),
            StatementKind::Query
        );
    }

    #[test]
    fn plain_create_table_becomes_a_user_table_in_the_user_variant() {
        assert_eq!(
            for_variant("CREATE TABLE t (a INT)", Variant::User),
            "CREATE USER TABLE t (a INT)"
        );
        assert_eq!(
            for_variant("create table t (a INT)", Variant::User),
            "CREATE USER table t (a INT)"
        );
        assert_eq!(
            for_variant("CREATE SHARED TABLE t (a INT)", Variant::User),
            "CREATE SHARED TABLE t (a INT)"
        );
        assert_eq!(
            for_variant("CREATE TABLE t (a INT)", Variant::Shared),
            "CREATE TABLE t (a INT)"
        );
    }

    #[test]
    fn floats_are_rounded_to_twelve_digits() {
        assert_eq!(float_text(0.1 + 0.2), "0.3");
        assert_eq!(float_text(1.0), "1");
        assert_eq!(float_text(-0.0), "0");
        assert_eq!(float_text(2.5), "2.5");
        assert_eq!(float_text(123456789.123456789), "123456789.123");
        assert_eq!(float_text(f64::NAN), "NaN");
    }
}

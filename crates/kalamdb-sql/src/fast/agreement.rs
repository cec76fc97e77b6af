//! The planner bypasses are held to the planned path: random tables (every contract type,
//! NOT NULL, literal defaults), random literal INSERTs (numbers of every shape, strings,
//! NULLs, booleans, omitted columns), written once through an engine that takes the fast
//! paths and once through one that plans everything. Both must answer the same (the same
//! error code, or the same row count), and then hold the same rows, read by a planned query
//! and by point reads (`WHERE id = k`, the fast read path), hot and after a flush.

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use kalamdb_core::{Db, JobManager, JobSettings, Principal, Role};
use proptest::prelude::*;

use crate::engine::{Caller, Engine, Limits, StatementOutput};

struct Pair {
    runtime: tokio::runtime::Runtime,
    fast: Engine,
    planned: Engine,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let engine = |dir: &std::path::Path| {
            let db: Arc<Db> = Db::open(dir).unwrap();
            let jobs = JobManager::open(db.store.clone(), JobSettings::default()).unwrap();
            Engine::new(
                db,
                jobs,
                Limits {
                    query_threads: 1,
                    ..Limits::default()
                },
            )
            .unwrap()
        };
        let (fast, planned) =
            runtime.block_on(async { (engine(a.path()), engine(b.path()).planned_only()) });
        Pair {
            runtime,
            fast,
            planned,
            _dirs: (a, b),
        }
    })
}

fn root() -> Caller {
    Caller {
        principal: Principal {
            user_id: "root".into(),
            role: Role::System,
        },
        namespace: "default".into(),
        timeout: None,
        transaction: None,
    }
}

/// What a request answered, comparable across the two engines: the error code, or each
/// statement's row count and rows rendered as text.
fn outcome(engine: &Engine, sql: &str) -> Result<Vec<String>, String> {
    let p = pair();
    let out = p.runtime.block_on(engine.execute(&root(), sql, &[]));
    if let Some((_, e)) = out.error {
        return Err(format!("{:?}", e.code()));
    }
    Ok(out
        .results
        .iter()
        .map(|r| match r {
            StatementOutput::Rows {
                batches, row_count, ..
            } => format!("{row_count} rows\n{}", render(batches)),
            StatementOutput::Affected { row_count, .. } => format!("{row_count} affected"),
            StatementOutput::Message(_) | StatementOutput::Job { .. } => "ok".to_string(),
        })
        .collect())
}

fn render(batches: &[RecordBatch]) -> String {
    // Values only: the two paths may name or annotate a result's fields differently.
    let mut out = String::new();
    for b in batches {
        for row in 0..b.num_rows() {
            for col in b.columns() {
                let f = arrow::util::display::ArrayFormatter::try_new(
                    col.as_ref(),
                    &Default::default(),
                )
                .unwrap();
                out.push_str(&f.value(row).to_string());
                out.push('|');
            }
            out.push('\n');
        }
    }
    out
}

/// Both engines, same request: same answer.
fn both(sql: &str) -> Result<Vec<String>, TestCaseError> {
    let p = pair();
    let (fast, planned) = (outcome(&p.fast, sql), outcome(&p.planned, sql));
    prop_assert_eq!(&fast, &planned, "{}", sql);
    Ok(fast.unwrap_or_default())
}

const TYPES: &[&str] = &[
    "SMALLINT",
    "INT",
    "BIGINT",
    "REAL",
    "DOUBLE",
    "DECIMAL(10,2)",
    "DECIMAL(38,10)",
    "TEXT",
    "BOOLEAN",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "JSON",
    "UUID",
    "BYTEA",
];

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("NULL".to_string()),
        any::<i16>().prop_map(|i| i.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        (-100_000i64..100_000, 0u32..4)
            .prop_map(|(a, b)| format!("{a}.{}", "5".repeat(b as usize + 1))),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b:03}")),
        (1u32..9, -40i32..40).prop_map(|(a, e)| format!("{a}e{e}")),
        Just("1e39".to_string()),
        Just("12345678901234567890.1234567891".to_string()),
        prop::sample::select(vec![
            "'abc'",
            "''",
            "'12'",
            "'-3.5'",
            "'2024-02-29'",
            "'2024-02-30'",
            "'12:34:56.5'",
            "'24:00:00'",
            "'2024-01-02 03:04:05'",
            "'2024-01-02T03:04:05Z'",
            "'true'",
            "'f'",
            "'{\"a\": 1}'",
            "'[1,'",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'not-a-uuid'",
            "TRUE",
            "FALSE",
            "'Infinity'",
            "'NaN'",
        ])
        .prop_map(String::from),
    ]
}

fn column() -> impl Strategy<Value = (String, bool, Option<String>)> {
    (
        prop::sample::select(TYPES.to_vec()),
        any::<bool>(),
        prop::option::weighted(0.3, literal()),
    )
        .prop_map(|(t, not_null, default)| (t.to_string(), not_null, default))
}

static TABLES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fast_paths_agree_with_the_planned_path(
        columns in prop::collection::vec(column(), 1..5),
        rows in prop::collection::vec(prop::collection::vec(literal(), 5), 1..4),
        named in prop::collection::vec(any::<bool>(), 5),
    ) {
        let t = format!("default.fp{}", TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let defs: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (ty, not_null, default))| {
                let mut d = format!("c{i} {ty}");
                if *not_null {
                    d.push_str(" NOT NULL");
                }
                if let Some(v) = default {
                    d.push_str(&format!(" DEFAULT {v}"));
                }
                d
            })
            .collect();
        let created = both(&format!("CREATE SHARED TABLE {t} (id INT PRIMARY KEY, {})", defs.join(", ")));
        if created.is_err() {
            return Ok(()); // the two engines agreed; only a table both created is written
        }
        // Which columns the INSERT names (the others take their defaults).
        let listed: Vec<usize> = (0..columns.len()).filter(|i| named[*i] || *i == 0).collect();
        let names: Vec<String> = listed.iter().map(|i| format!("c{i}")).collect();
        let values: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let items: Vec<&str> = listed.iter().map(|i| row[*i].as_str()).collect();
                format!("({}, {})", r + 1, items.join(", "))
            })
            .collect();
        both(&format!("INSERT INTO {t} (id, {}) VALUES {}", names.join(", "), values.join(", ")))?;
        // Each row alone too (the fast path takes single rows of one kind more often).
        for (r, row) in rows.iter().enumerate() {
            let items: Vec<&str> = listed.iter().map(|i| row[*i].as_str()).collect();
            both(&format!("INSERT INTO {t} (id, {}) VALUES ({}, {})", names.join(", "), 100 + r, items.join(", ")))?;
        }
        let read = |t: &str| -> Result<(), TestCaseError> {
            both(&format!("SELECT * FROM {t} ORDER BY id"))?;
            for id in (1..=rows.len()).chain(100..100 + rows.len()) {
                both(&format!("SELECT * FROM {t} WHERE id = {id}"))?;
            }
            Ok(())
        };
        // Upserts of the same literals: over the existing keys and over new ones, hot and
        // flushed (the literal upsert bypass against the planned INSERT ... ON CONFLICT).
        let upsert = |base: usize, action: &str| -> Result<(), TestCaseError> {
            let values: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    let items: Vec<&str> = listed.iter().map(|i| row[*i].as_str()).collect();
                    format!("({}, {})", base + r, items.join(", "))
                })
                .collect();
            both(&format!(
                "INSERT INTO {t} (id, {}) VALUES {} ON CONFLICT (id) {action}",
                names.join(", "),
                values.join(", ")
            ))?;
            Ok(())
        };
        upsert(1, "DO UPDATE SET c0 = excluded.c0")?;
        upsert(200, "DO NOTHING")?;
        read(&t)?;
        both(&format!("STORAGE FLUSH TABLE {t} WAIT"))?;
        read(&t)?;
        upsert(100, "DO UPDATE SET c0 = excluded.c0")?;
        upsert(300, "DO UPDATE SET c0 = excluded.c0")?;
        read(&t)?;
    }
}

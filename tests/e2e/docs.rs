//! Every ```sql block of the docs runs against a real server, in order, so the docs cannot rot.

use kalamdb_tests::TestServer;

fn sql_blocks(doc: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```sql") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "{doc}: unterminated sql block");
    blocks
}

#[test]
fn every_sql_example_in_the_docs_runs() {
    let s = TestServer::start();
    let mut ran = 0;
    for doc in ["docs/SQL.md", "docs/OPERATIONS.md"] {
        for block in sql_blocks(doc) {
            let r = s.sql_as(&kalamdb_tests::Auth::root(), &block);
            assert_eq!(r.status, 200, "{doc} example failed:\n{block}\n{}", r.body);
            ran += 1;
        }
    }
    assert!(ran >= 7, "only {ran} examples found");
}

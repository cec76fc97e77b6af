//! Server configuration: a TOML file, then `KALAMDB_*` environment variables, which win.
//!
//! Unknown keys and invalid values are errors that name the key, so a typo never silently
//! falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration. Every key is documented in `backend/server.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub flush: FlushSection,
    pub jobs: JobsSection,
    pub metrics: MetricsSection,
    pub log: LogSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve GET /metrics at all.
    pub enabled: bool,
    /// Serve it to non-loopback clients too (default: loopback only).
    pub allow_remote: bool,
}

impl Default for MetricsSection {
    fn default() -> MetricsSection {
        MetricsSection {
            enabled: true,
            allow_remote: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushSection {
    /// Most rows per Parquet segment file (bounds a flush's memory).
    pub segment_rows: usize,
    /// Scopes (users) one flush job writes at once, each on its own blocking thread.
    pub parallelism: usize,
    /// Policy of tables without FLUSH_POLICY: `rows:N,interval:S`, or "" for none.
    pub default_policy: String,
    /// How often the policy scheduler looks at the tables, in milliseconds.
    pub policy_check_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// Jobs running at once.
    pub max_concurrent: usize,
    /// Attempts of a flush job for scopes that fail (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles for each further one.
    pub retry_backoff_ms: u64,
    /// Finished jobs are deleted from system.jobs after this many seconds.
    pub retention_secs: u64,
    /// This server's name in system.jobs.node_id.
    pub node_id: String,
}

impl Default for FlushSection {
    fn default() -> FlushSection {
        FlushSection {
            segment_rows: kalamdb_core::JobSettings::default().segment_rows,
            parallelism: kalamdb_core::JobSettings::default().flush_parallelism,
            default_policy: "rows:100000,interval:300".into(),
            policy_check_interval_ms: 1000,
        }
    }
}

impl Default for JobsSection {
    fn default() -> JobsSection {
        // One source of truth for the defaults: the job manager's own.
        let d = kalamdb_core::JobSettings::default();
        JobsSection {
            max_concurrent: d.max_concurrent,
            max_attempts: d.max_attempts,
            retry_backoff_ms: d.retry_backoff_ms,
            retention_secs: d.retention_secs,
            node_id: d.node_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes (larger: 413 PAYLOAD_TOO_LARGE).
    pub max_body_bytes: usize,
    /// Seconds a SIGTERM/SIGINT stop may take: in-flight requests, then running jobs; then the
    /// process exits. Below Docker's default 10 s grace period.
    pub shutdown_timeout_secs: u64,
    /// A request's head (request line and headers) must arrive within this many seconds.
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this many seconds (then 408 TIMEOUT).
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout_secs: u64,
    /// Most connections open at once; one more gets 503 and is closed.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// All state: RocksDB, Parquet, manifests.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Lifetime of bearer tokens from /v1/api/auth/login, in seconds.
    pub token_ttl_secs: u64,
    /// Password of `root`; normally set through KALAMDB_ROOT_PASSWORD instead.
    pub root_password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_statements_per_request: usize,
    pub max_result_rows: usize,
    pub query_memory_bytes: usize,
    pub max_sql_nesting_depth: usize,
    /// Longest a statement may spend reading, in seconds.
    pub statement_timeout_secs: u64,
    /// Most a request's `timeout_ms` may raise its statements' timeout to, in seconds.
    pub max_statement_timeout_secs: u64,
    /// Largest value lpad/repeat/range/... may build, in bytes.
    pub max_value_bytes: usize,
    /// Most rows one transaction may write (BEGIN ... COMMIT).
    pub max_transaction_rows: usize,
    /// Longest a transaction may stay open, from BEGIN to COMMIT, in seconds.
    pub transaction_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// tracing filter, e.g. `info` or `kalamdb_core=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Requests slower than this (milliseconds) are logged at WARN with their SQL; 0 = off.
    pub slow_query_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: ServerSection::default(),
            storage: StorageSection::default(),
            auth: AuthSection::default(),
            limits: LimitsSection::default(),
            flush: FlushSection::default(),
            jobs: JobsSection::default(),
            metrics: MetricsSection::default(),
            log: LogSection::default(),
        }
    }
}

impl Default for ServerSection {
    fn default() -> ServerSection {
        ServerSection {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 10 * 1024 * 1024,
            shutdown_timeout_secs: 8,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
        }
    }
}

impl Default for StorageSection {
    fn default() -> StorageSection {
        StorageSection {
            data_dir: PathBuf::from("./data"),
        }
    }
}

impl Default for AuthSection {
    fn default() -> AuthSection {
        AuthSection {
            token_ttl_secs: 24 * 3600,
            root_password: None,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> LimitsSection {
        let d = kalamdb_sql::Limits::default();
        LimitsSection {
            max_statements_per_request: d.max_statements,
            max_result_rows: d.max_result_rows,
            query_memory_bytes: d.query_memory_bytes,
            max_sql_nesting_depth: d.max_parser_recursion,
            statement_timeout_secs: d.statement_timeout.as_secs(),
            max_statement_timeout_secs: d.max_statement_timeout.as_secs(),
            max_value_bytes: d.max_value_bytes,
            max_transaction_rows: d.max_transaction_rows,
            transaction_timeout_secs: d.transaction_timeout.as_secs(),
        }
    }
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            level: "info".into(),
            format: "text".into(),
            slow_query_ms: 1000,
        }
    }
}

/// Contract environment variables that are not `KALAMDB_SECTION_KEY`.
pub const ENV_ALIASES: &[(&str, &str, &str)] = &[
    ("KALAMDB_DATA_DIR", "storage", "data_dir"),
    ("KALAMDB_ROOT_PASSWORD", "auth", "root_password"),
    ("KALAMDB_LOG", "log", "level"),
];

/// `KALAMDB_*` variables that are not configuration keys.
pub const OTHER_ENV: &[&str] = &["KALAMDB_FAILPOINTS_FILE"];

/// Parse an environment value as the type of the key's current value.
fn env_value(var: &str, current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let bad = |what: &str| format!("{var}: '{raw}' is not {what}");
    Ok(match current {
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?)
        }
        toml::Value::Float(_) => {
            toml::Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?)
        }
        _ => toml::Value::String(raw.to_string()),
    })
}

/// The default config file when run from the repository.
pub const DEFAULT_CONFIG_FILE: &str = "backend/server.toml";

impl Config {
    /// Load `path` (or the default file if it exists), then apply environment variables.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let mut config = match path {
            Some(p) => Self::from_file(p)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Config::default(),
        };
        config.check_env_names(std::env::vars().map(|(k, _)| k))?;
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(p: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read config file {}: {e}", p.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", p.display()))
    }

    /// Apply environment variables: every key `section.key` can be set as
    /// `KALAMDB_SECTION_KEY` (e.g. `KALAMDB_LIMITS_MAX_RESULT_ROWS`), plus the contract's
    /// names `KALAMDB_DATA_DIR`, `KALAMDB_ROOT_PASSWORD` and `KALAMDB_LOG`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let mut doc = toml::Value::try_from(&*self).map_err(|e| e.to_string())?;
        let sections = doc.as_table_mut().ok_or("config is not a table")?;
        for (section, table) in sections.iter_mut() {
            let Some(table) = table.as_table_mut() else {
                continue;
            };
            for (key, value) in table.iter_mut() {
                let var = format!("KALAMDB_{}_{}", section.to_uppercase(), key.to_uppercase());
                if let Some(raw) = get(&var) {
                    *value = env_value(&var, value, &raw)?;
                }
            }
        }
        for (var, section, key) in ENV_ALIASES {
            if let Some(raw) = get(var) {
                let table = sections
                    .get_mut(*section)
                    .and_then(|t| t.as_table_mut())
                    .ok_or("config section missing")?;
                table.insert((*key).to_string(), toml::Value::String(raw));
            }
        }
        let mut next: Config = doc.try_into().map_err(|e: toml::de::Error| e.to_string())?;
        if next.auth.root_password.as_deref() == Some("") {
            next.auth.root_password = None;
        }
        *self = next;
        Ok(())
    }

    /// Refuse `KALAMDB_*` variables that name no key (a typo would otherwise be ignored).
    pub fn check_env_names(&self, names: impl Iterator<Item = String>) -> Result<(), String> {
        let doc = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        let mut known: Vec<String> = ENV_ALIASES.iter().map(|(v, _, _)| v.to_string()).collect();
        known.extend(OTHER_ENV.iter().map(|v| v.to_string()));
        known.push("KALAMDB_AUTH_ROOT_PASSWORD".into());
        if let Some(sections) = doc.as_table() {
            for (section, table) in sections {
                for key in table
                    .as_table()
                    .map(|t| t.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    known.push(format!(
                        "KALAMDB_{}_{}",
                        section.to_uppercase(),
                        key.to_uppercase()
                    ));
                }
            }
        }
        for name in names {
            if name.starts_with("KALAMDB_") && !known.contains(&name) {
                return Err(format!(
                    "unknown environment variable {name} (see docs/CONFIGURATION.md)"
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        if c.auth.root_password.is_some() {
            c.auth.root_password = Some("********".into());
        }
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    fn validate(&self) -> Result<(), String> {
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err("storage.data_dir (KALAMDB_DATA_DIR) is empty; name a directory".into());
        }
        if self.server.max_body_bytes == 0 {
            return Err("server.max_body_bytes must be greater than 0".into());
        }
        if self.server.header_read_timeout_secs == 0
            || self.server.body_read_timeout_secs == 0
            || self.server.idle_timeout_secs == 0
        {
            return Err("server.header_read_timeout_secs, body_read_timeout_secs and idle_timeout_secs must be at least 1".into());
        }
        if self.server.max_connections == 0 || self.server.max_connections > 1_000_000 {
            return Err("server.max_connections must be from 1 to 1000000".into());
        }
        if self.limits.max_statements_per_request == 0 {
            return Err("limits.max_statements_per_request must be greater than 0".into());
        }
        if self.limits.max_sql_nesting_depth < 10 {
            return Err("limits.max_sql_nesting_depth must be at least 10".into());
        }
        if self.limits.query_memory_bytes < 16 * 1024 * 1024 {
            return Err("limits.query_memory_bytes must be at least 16 MiB".into());
        }
        if self.limits.max_value_bytes < 1024 * 1024 {
            return Err("limits.max_value_bytes must be at least 1 MiB".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(format!(
                "log.format must be 'text' or 'json', not '{}'",
                self.log.format
            ));
        }
        if self.flush.segment_rows == 0 || self.flush.segment_rows > 10_000_000 {
            return Err("flush.segment_rows must be between 1 and 10000000".into());
        }
        if self.flush.parallelism == 0 || self.flush.parallelism > 64 {
            return Err("flush.parallelism must be between 1 and 64".into());
        }
        if !self.flush.default_policy.is_empty() {
            kalamdb_core::FlushPolicy::parse(&self.flush.default_policy)
                .map_err(|e| format!("flush.default_policy: {e}"))?;
        }
        if self.flush.policy_check_interval_ms == 0 {
            return Err("flush.policy_check_interval_ms must be greater than 0".into());
        }
        if self.jobs.max_concurrent == 0 || self.jobs.max_attempts == 0 {
            return Err("jobs.max_concurrent and jobs.max_attempts must be greater than 0".into());
        }
        if self.auth.token_ttl_secs == 0 {
            return Err("auth.token_ttl_secs must be greater than 0".into());
        }
        Ok(())
    }

    pub fn job_settings(&self) -> kalamdb_core::JobSettings {
        kalamdb_core::JobSettings {
            max_concurrent: self.jobs.max_concurrent,
            max_attempts: self.jobs.max_attempts,
            retry_backoff_ms: self.jobs.retry_backoff_ms,
            retention_secs: self.jobs.retention_secs,
            segment_rows: self.flush.segment_rows,
            flush_parallelism: self.flush.parallelism,
            node_id: self.jobs.node_id.clone(),
        }
    }

    pub fn default_flush_policy(&self) -> kalamdb_core::FlushPolicy {
        if self.flush.default_policy.is_empty() {
            kalamdb_core::FlushPolicy::default()
        } else {
            kalamdb_core::FlushPolicy::parse(&self.flush.default_policy).unwrap_or_default()
        }
    }

    pub fn engine_limits(&self) -> kalamdb_sql::Limits {
        kalamdb_sql::Limits {
            max_statements: self.limits.max_statements_per_request,
            max_result_rows: self.limits.max_result_rows,
            query_memory_bytes: self.limits.query_memory_bytes,
            max_parser_recursion: self.limits.max_sql_nesting_depth,
            statement_timeout: std::time::Duration::from_secs(
                self.limits.statement_timeout_secs.max(1),
            ),
            max_statement_timeout: std::time::Duration::from_secs(
                self.limits.max_statement_timeout_secs.max(1),
            ),
            query_threads: kalamdb_sql::Limits::default().query_threads,
            max_value_bytes: self.limits.max_value_bytes,
            max_transaction_rows: self.limits.max_transaction_rows.max(1),
            transaction_timeout: std::time::Duration::from_secs(
                self.limits.transaction_timeout_secs.max(1),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../backend/server.toml");
        let c = Config::from_file(&path).unwrap();
        let d = Config::default();
        assert_eq!(c.server.port, d.server.port);
        assert_eq!(c.server.max_body_bytes, d.server.max_body_bytes);
        assert_eq!(c.limits.max_result_rows, d.limits.max_result_rows);
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        let e = toml::from_str::<Config>("[server]\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "KALAMDB_SERVER_PORT" => Some("9999".into()),
            "KALAMDB_DATA_DIR" => Some("/tmp/x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.server.port, 9999);
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
        let e = c
            .apply_env(|k| (k == "KALAMDB_SERVER_PORT").then(|| "nope".into()))
            .unwrap_err();
        assert!(e.contains("KALAMDB_SERVER_PORT"), "{e}");
        c.apply_env(|k| (k == "KALAMDB_LIMITS_MAX_RESULT_ROWS").then(|| "7".into()))
            .unwrap();
        assert_eq!(c.limits.max_result_rows, 7);
        c.apply_env(|k| (k == "KALAMDB_ROOT_PASSWORD").then(|| "s3cret".into()))
            .unwrap();
        assert!(c
            .check_env_names(["KALAMDB_LIMITS_MAX_RESULT_ROWS".to_string()].into_iter())
            .is_ok());
        let e = c
            .check_env_names(["KALAMDB_LIMITS_MAX_RESLUT_ROWS".to_string()].into_iter())
            .unwrap_err();
        assert!(e.contains("KALAMDB_LIMITS_MAX_RESLUT_ROWS"), "{e}");
        assert!(c.to_masked_toml().contains("********") && !c.to_masked_toml().contains("s3cret"));
    }
}

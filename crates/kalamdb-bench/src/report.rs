//! Figures, percentiles, and the Markdown / JSON output.

use std::time::Duration;

use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq)]
pub enum Better {
    Higher,
    Lower,
}

pub struct Figure {
    pub scenario: &'static str,
    pub metric: String,
    pub unit: &'static str,
    pub better: Better,
    pub kalamdb: f64,
    pub raw: Option<f64>,
    pub pg: Option<f64>,
    /// The target we hold ourselves to, as text, and whether this run met it.
    pub target: Option<(String, bool)>,
    pub note: String,
}

impl Figure {
    pub fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        better: Better,
        kalamdb: f64,
    ) -> Figure {
        Figure {
            scenario,
            metric: metric.into(),
            unit,
            better,
            kalamdb,
            raw: None,
            pg: None,
            target: None,
            note: String::new(),
        }
    }
    pub fn raw(mut self, v: f64) -> Figure {
        self.raw = Some(v);
        self
    }
    pub fn pg(mut self, v: Option<f64>) -> Figure {
        self.pg = v;
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Figure {
        self.note = n.into();
        self
    }
    pub fn target(mut self, text: impl Into<String>, ok: bool) -> Figure {
        self.target = Some((text.into(), ok));
        self
    }
    /// KalamDB divided by the raw component (for "higher is better" figures, the share of the
    /// raw limit reached; for times, how many times slower).
    pub fn ratio_raw(&self) -> Option<f64> {
        self.raw.filter(|r| *r > 0.0).map(|r| self.kalamdb / r)
    }
    pub fn ratio_pg(&self) -> Option<f64> {
        self.pg.filter(|r| *r > 0.0).map(|r| self.kalamdb / r)
    }
    /// Whether KalamDB beats PostgreSQL on this figure.
    pub fn ahead_of_pg(&self) -> Option<bool> {
        self.pg.map(|p| match self.better {
            Better::Higher => self.kalamdb > p,
            Better::Lower => self.kalamdb < p,
        })
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nearest-rank percentile of latencies, in microseconds.
pub fn percentile_us(samples: &mut [Duration], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    micros(samples[rank.clamp(1, samples.len()) - 1])
}

pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "no values");
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "–".into())
}

fn ratio(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".into())
}

pub fn markdown(figures: &[Figure], header: &str) -> String {
    let mut s = String::from(header);
    s.push_str(
        "\n| Scenario | Metric | KalamDB | Raw component | KalamDB ÷ raw | PostgreSQL | KalamDB ÷ PG | Target | Note |\n\
         |---|---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for f in figures {
        let arrow = if f.better == Better::Higher {
            "↑"
        } else {
            "↓"
        };
        let target = match &f.target {
            Some((t, true)) => format!("{t} ✅"),
            Some((t, false)) => format!("{t} ❌"),
            None => String::new(),
        };
        s.push_str(&format!(
            "| {} | {} ({}) {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.scenario,
            f.metric,
            f.unit,
            arrow,
            fmt_num(f.kalamdb),
            opt(f.raw),
            ratio(f.ratio_raw()),
            opt(f.pg),
            ratio(f.ratio_pg()),
            target,
            f.note
        ));
    }
    s
}

pub fn json(figures: &[Figure], meta: Value) -> Value {
    let figs: Vec<Value> = figures
        .iter()
        .map(|f| {
            json!({
                "scenario": f.scenario,
                "metric": f.metric,
                "unit": f.unit,
                "better": if f.better == Better::Higher { "higher" } else { "lower" },
                "kalamdb": f.kalamdb,
                "raw": f.raw,
                "postgresql": f.pg,
                "ratio_to_raw": f.ratio_raw(),
                "ratio_to_postgresql": f.ratio_pg(),
                "ahead_of_postgresql": f.ahead_of_pg(),
                "target": f.target.as_ref().map(|(t, ok)| json!({"text": t, "met": ok})),
                "note": f.note,
            })
        })
        .collect();
    let mut out = meta;
    out["figures"] = Value::Array(figs);
    out
}

/// What machine and commit the figures come from.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = crate::kalam::proc_meminfo_total();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    json!({"cpu": model, "cores": cores, "memory_gib": (mem as f64 / (1u64 << 30) as f64 * 10.0).round() / 10.0,
           "kernel": kernel, "os": os})
}

pub fn git_commit() -> String {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

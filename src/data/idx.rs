//! The IDX file format of MNIST and its relatives: a strict reader and a writer.
//!
//! An IDX file is `00 00 <dtype> <rank>`, then `rank` big-endian `u32`
//! dimensions, then the elements in row-major order. Only `u8` elements
//! (dtype `0x08`) are supported, which is all the image datasets use. Files may
//! be gzip-compressed (detected by the magic bytes `1f 8b`, not by the name).
//!
//! The reader rejects anything inexact: a wrong magic, a truncated header or
//! body, trailing bytes. Errors name the file and never panic. The writer
//! stores prepared splits uncompressed so they load fast.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use super::{Error, Result};

const FORMAT: &str = "IDX";
/// IDX type code of unsigned bytes.
const DTYPE_U8: u8 = 0x08;
/// Gzip's first two bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Refuse to inflate beyond this many bytes (guards against gzip bombs).
const MAX_INFLATED: u64 = 4 << 30;

/// A decoded IDX array of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads a whole file, inflating it when it starts with the gzip magic.
///
/// Shared by the IDX and CIFAR readers, whose files come both ways.
pub(crate) fn read_maybe_gz(path: &Path, format: &'static str) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format, format!("corrupt gzip stream: {e}")))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(Error::format(
            path,
            format,
            format!("inflates to more than {MAX_INFLATED} bytes"),
        ));
    }
    Ok(out)
}

/// Reads an IDX file, plain or gzip-compressed.
pub fn read(path: &Path) -> Result<Idx> {
    let bytes = read_maybe_gz(path, FORMAT)?;
    parse(&bytes, path)
}

/// Decodes IDX bytes; `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Idx> {
    let bad = |reason: String| Error::format(path, FORMAT, reason);
    if bytes.len() < 4 {
        return Err(bad(format!(
            "file is {} bytes, shorter than the 4-byte magic",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "magic starts with {:02x} {:02x}, expected 00 00",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != DTYPE_U8 {
        return Err(bad(format!(
            "element type code 0x{:02x} is not supported (only 0x08, unsigned byte)",
            bytes[2]
        )));
    }
    let rank = usize::from(bytes[3]);
    if rank == 0 {
        return Err(bad("rank is 0".into()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated header: rank {rank} needs {header} bytes, file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let body = bytes.len() - header;
    if body < count {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {count} data bytes, found {body}"
        )));
    }
    if body > count {
        return Err(bad(format!(
            "{} trailing bytes after the {count} data bytes of dimensions {dims:?}",
            body - count
        )));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

impl Idx {
    /// Checks the rank, so callers can index `dims` without panicking.
    pub fn expect_rank(&self, rank: usize, path: &Path) -> Result<()> {
        if self.dims.len() == rank {
            Ok(())
        } else {
            Err(Error::format(
                path,
                FORMAT,
                format!(
                    "expected {rank} dimensions, found {} ({:?})",
                    self.dims.len(),
                    self.dims
                ),
            ))
        }
    }
}

/// Encodes an IDX array of bytes; fails if a dimension exceeds `u32` or the
/// data length differs from the product of `dims`.
pub fn encode(dims: &[usize], data: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = header(dims, data.len(), path)?;
    out.extend_from_slice(data);
    Ok(out)
}

/// The header of an IDX file of `dims` holding `len` data bytes, with room
/// reserved for them (callers that build the data in place append it).
pub fn header(dims: &[usize], len: usize, path: &Path) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::format(path, FORMAT, reason);
    let rank = u8::try_from(dims.len())
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(|| bad(format!("cannot write rank {}", dims.len())))?;
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(len) {
        return Err(bad(format!(
            "dimensions {dims:?} do not match {len} data bytes"
        )));
    }
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + len);
    out.extend_from_slice(&[0, 0, DTYPE_U8, rank]);
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| bad(format!("dimension {d} exceeds u32")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(out)
}

/// Writes an uncompressed IDX file (byte-for-byte determined by `dims` and `data`).
pub fn write(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let bytes = encode(dims, data, path)?;
    let mut file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.flush())
        .map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    fn sample() -> (Vec<usize>, Vec<u8>) {
        (vec![2, 3, 2], (0..12).collect())
    }

    fn err_of(bytes: &[u8]) -> String {
        match parse(bytes, Path::new("/x/bad.idx")) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_plain_and_gzip_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (dims, data) = sample();
        let plain = dir.path().join("a-idx3-ubyte");
        write(&plain, &dims, &data).unwrap();
        let gz = dir.path().join("a-idx3-ubyte.gz");
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&fs::read(&plain).unwrap()).unwrap();
        fs::write(&gz, enc.finish().unwrap()).unwrap();
        // Detection is by content: a gzip file without the .gz suffix reads too.
        let renamed = dir.path().join("compressed-without-suffix");
        fs::copy(&gz, &renamed).unwrap();
        let a = read(&plain).unwrap();
        assert_eq!(a, Idx { dims, data });
        assert_eq!(read(&gz).unwrap(), a);
        assert_eq!(read(&renamed).unwrap(), a);
    }

    #[test]
    fn strict_errors_name_the_file() {
        let (dims, data) = sample();
        let good = encode(&dims, &data, Path::new("x")).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0], "shorter than"),
            (vec![1, 0, 8, 1, 0, 0, 0, 0], "magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 0], "element type"),
            (vec![0, 0, 8, 0], "rank is 0"),
            (good[..10].to_vec(), "truncated header"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![7]].concat(), "trailing"),
            (
                vec![
                    0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                ],
                "overflow",
            ),
            (vec![0, 0, 8, 1, 255, 255, 255, 255, 1], "truncated"),
        ];
        for (bytes, needle) in cases {
            let msg = err_of(&bytes);
            assert!(msg.contains("/x/bad.idx"), "{msg}");
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn corrupt_gzip_and_missing_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gz");
        fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let msg = read(&path).unwrap_err().to_string();
        assert!(msg.contains("broken.gz") && msg.contains("gzip"), "{msg}");
        let missing = dir.path().join("nope");
        assert!(read(&missing).unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn expect_rank_and_encode_checks() {
        let (dims, data) = sample();
        let idx = Idx {
            dims: dims.clone(),
            data: data.clone(),
        };
        assert!(idx.expect_rank(3, Path::new("f")).is_ok());
        assert!(idx.expect_rank(1, Path::new("f")).is_err());
        assert!(encode(&[5], &data, Path::new("f")).is_err());
        assert!(encode(&[], &[], Path::new("f")).is_err());
    }
}

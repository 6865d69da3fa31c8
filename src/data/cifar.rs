//! The binary formats of CIFAR-10 and CIFAR-100: strict readers.
//!
//! A CIFAR-10 file is a sequence of 3073-byte records: one label byte (0–9),
//! then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32×32
//! row-major), which is already our C×H×W layout. CIFAR-100 records have two
//! label bytes, coarse (0–19) then fine (0–99), and we keep the fine label.
//! A file whose length is not a whole, non-zero number of records, or whose
//! labels are out of range, is rejected with an error naming it.

use std::path::Path;

use super::dataset::Split;
use super::{Error, Result};

/// Bytes of one 32×32 RGB image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which of the two CIFAR binary formats a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarVariant {
    /// CIFAR-10: one label byte per record, 10 classes.
    Ten,
    /// CIFAR-100: coarse and fine label bytes per record; the fine label (100 classes) is used.
    Hundred,
}

impl CifarVariant {
    /// Label bytes before each image.
    fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Ten => 1,
            CifarVariant::Hundred => 2,
        }
    }

    /// Bytes per record.
    pub fn record_len(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    /// Number of (fine) classes.
    pub fn classes(self) -> usize {
        match self {
            CifarVariant::Ten => 10,
            CifarVariant::Hundred => 100,
        }
    }

    fn format_name(self) -> &'static str {
        match self {
            CifarVariant::Ten => "CIFAR-10 binary",
            CifarVariant::Hundred => "CIFAR-100 binary",
        }
    }
}

/// Reads a CIFAR binary file (plain or gzip-compressed).
pub fn read(path: &Path, variant: CifarVariant) -> Result<Split> {
    let bytes = super::idx::read_maybe_gz(path, variant.format_name())?;
    parse(&bytes, variant, path)
}

/// Decodes CIFAR records; `path` only names the source in errors.
pub fn parse(bytes: &[u8], variant: CifarVariant, path: &Path) -> Result<Split> {
    let record = variant.record_len();
    let bad = |reason: String| Error::format(path, variant.format_name(), reason);
    if bytes.is_empty() {
        return Err(bad("file is empty".into()));
    }
    if !bytes.len().is_multiple_of(record) {
        return Err(bad(format!(
            "length {} is not a multiple of the {record}-byte record ({} whole records and {} bytes \
             left over: truncated, or the other CIFAR variant)",
            bytes.len(),
            bytes.len() / record,
            bytes.len() % record
        )));
    }
    let n = bytes.len() / record;
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let (head, pixels) = rec.split_at(variant.label_bytes());
        if variant == CifarVariant::Hundred && head[0] >= 20 {
            return Err(bad(format!(
                "record {i} has coarse label {}, expected 0..20",
                head[0]
            )));
        }
        let label = head[head.len() - 1];
        if usize::from(label) >= variant.classes() {
            return Err(bad(format!(
                "record {i} has label {label}, expected 0..{}",
                variant.classes()
            )));
        }
        labels.push(label);
        images.extend_from_slice(pixels);
    }
    Ok(Split { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(variant: CifarVariant, labels: &[(u8, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &(coarse, fine)) in labels.iter().enumerate() {
            if variant == CifarVariant::Hundred {
                out.push(coarse);
            }
            out.push(fine);
            out.extend((0..IMAGE_BYTES).map(|p| (p + i) as u8));
        }
        out
    }

    #[test]
    fn reads_both_variants_and_keeps_the_fine_label() {
        let p = Path::new("batch.bin");
        let ten = parse(
            &records(CifarVariant::Ten, &[(0, 3), (0, 9)]),
            CifarVariant::Ten,
            p,
        )
        .unwrap();
        assert_eq!(ten.labels, vec![3, 9]);
        assert_eq!(ten.images.len(), 2 * IMAGE_BYTES);
        assert_eq!(ten.images[IMAGE_BYTES], 1);
        let hundred = parse(
            &records(CifarVariant::Hundred, &[(19, 99), (4, 42)]),
            CifarVariant::Hundred,
            p,
        )
        .unwrap();
        assert_eq!(hundred.labels, vec![99, 42]);
    }

    #[test]
    fn rejects_bad_files_naming_them() {
        let p = Path::new("/d/test_batch.bin");
        let good = records(CifarVariant::Ten, &[(0, 1), (0, 2)]);
        let cases: Vec<(Vec<u8>, CifarVariant, &str)> = vec![
            (vec![], CifarVariant::Ten, "empty"),
            (
                good[..good.len() - 5].to_vec(),
                CifarVariant::Ten,
                "multiple",
            ),
            (good.clone(), CifarVariant::Hundred, "multiple"),
            (
                records(CifarVariant::Ten, &[(0, 10)]),
                CifarVariant::Ten,
                "label 10",
            ),
            (
                records(CifarVariant::Hundred, &[(20, 1)]),
                CifarVariant::Hundred,
                "coarse label 20",
            ),
            (
                records(CifarVariant::Hundred, &[(1, 100)]),
                CifarVariant::Hundred,
                "label 100",
            ),
        ];
        for (bytes, variant, needle) in cases {
            let msg = parse(&bytes, variant, p).unwrap_err().to_string();
            assert!(
                msg.contains("/d/test_batch.bin") && msg.contains(needle),
                "{msg}"
            );
        }
    }
}

//! Tables as polars data frames, written and read as CSV (and written as Parquet for
//! `repro metrics`): the per-epoch metrics of
//! training, the rounds of pruning, the levels of noise evaluation.

use std::path::Path;

use polars::prelude::*;

/// Writes a data frame as CSV with a header.
pub fn write_csv(path: &Path, frame: &mut DataFrame) -> Result<(), String> {
    let mut file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    CsvWriter::new(&mut file)
        .include_header(true)
        .finish(frame)
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Writes a data frame as a Parquet file (uncompressed: no codec is compiled in).
pub fn write_parquet(path: &Path, frame: &mut DataFrame) -> Result<(), String> {
    let file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Uncompressed)
        .finish(frame)
        .map(|_| ())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Reads a CSV file with a header into a data frame.
pub fn read_csv(path: &Path) -> Result<DataFrame, String> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| format!("read {}: {e}", path.display()))
}

/// A column of a frame as `f64`s (nulls become NaN).
pub fn f64_column(frame: &DataFrame, name: &str) -> Result<Vec<f64>, String> {
    let column = frame
        .column(name)
        .map_err(|_| format!("the table has no column `{name}`"))?;
    let cast = column
        .cast(&DataType::Float64)
        .map_err(|e| format!("column `{name}` is not numeric: {e}"))?;
    let values = cast.f64().map_err(|e| format!("column `{name}`: {e}"))?;
    Ok((0..values.len())
        .map(|i| values.get(i).unwrap_or(f64::NAN))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut frame = df!("epoch" => [1u32, 2], "loss" => [0.5f64, 0.25]).unwrap();
        write_csv(&path, &mut frame).unwrap();
        let back = read_csv(&path).unwrap();
        assert_eq!(f64_column(&back, "loss").unwrap(), [0.5, 0.25]);
        assert_eq!(f64_column(&back, "epoch").unwrap(), [1.0, 2.0]);
        assert!(f64_column(&back, "nope").is_err());
    }

    #[test]
    fn parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut frame = df!("stage" => ["a", "b"], "value" => [0.5f64, 0.25]).unwrap();
        write_parquet(&path, &mut frame).unwrap();
        let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(f64_column(&back, "value").unwrap(), [0.5, 0.25]);
    }
}

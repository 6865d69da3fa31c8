//! The distinct contexts of a batch. The examples of a training batch share
//! their task's context, and a test batch has at most one per task, so the
//! dendrites compute their segment activations once per distinct context
//! column and expand the gates to the batch. Columns are grouped by their
//! bits (hashed, then compared), on the host, once per forward pass.

use std::collections::HashMap;
use std::sync::Arc;

use dfdx::prelude::*;

use super::cpu::{on_cpu, to_host, upload};
use super::Matrix;

/// The contexts of a batch as the dendritic layers read them: all of them,
/// and on the CPU (where the gates use them) their distinct columns.
#[derive(Debug, Clone)]
pub(crate) struct BatchContexts<D: Device<f32>> {
    all: Matrix<D>,
    distinct: Option<Distinct<D>>,
}

/// The distinct columns of a batch's contexts, in order of first appearance.
#[derive(Debug, Clone)]
pub(crate) struct Distinct<D: Device<f32>> {
    /// The distinct contexts as columns, (context, distinct).
    pub(crate) columns: Matrix<D>,
    /// The same on the host as rows, (distinct, context) row-major: what
    /// the segment weights' gradient reads.
    pub(crate) rows: Arc<Vec<f32>>,
    /// For each example, the index of its context among the distinct ones.
    pub(crate) of: Vec<usize>,
}

impl<D: Device<f32>> BatchContexts<D> {
    /// The contexts `all`, (context, batch); grouped into distinct columns
    /// on the CPU only (other devices keep the per-example computation).
    pub(crate) fn new(all: Matrix<D>) -> Self {
        let distinct = on_cpu::<D>().then(|| {
            let (len, batch) = *all.shape();
            let host = to_host(&all);
            let (first, of) = distinct_columns(&host, batch);
            let rows: Vec<f32> = first
                .iter()
                .flat_map(|&b| (0..len).map(move |k| (k, b)))
                .map(|(k, b)| host[k * batch + b])
                .collect();
            let d = first.len();
            let mut columns = vec![0.0f32; len * d];
            for (c, row) in rows.chunks(len).enumerate() {
                for (k, &v) in row.iter().enumerate() {
                    columns[k * d + c] = v;
                }
            }
            Distinct {
                columns: upload(all.device(), &columns, (len, d)),
                rows: Arc::new(rows),
                of,
            }
        });
        Self { all, distinct }
    }

    /// All contexts, (context, batch).
    pub(crate) fn all(&self) -> &Matrix<D> {
        &self.all
    }

    /// The distinct columns, where computed (on the CPU).
    pub(crate) fn distinct(&self) -> Option<&Distinct<D>> {
        self.distinct.as_ref()
    }
}

/// Groups the columns of `values`, (rows, batch) row-major, by their bits:
/// the first example of each distinct column, in order, and for every
/// example the index of its column's group.
fn distinct_columns(values: &[f32], batch: usize) -> (Vec<usize>, Vec<usize>) {
    let rows = values.len().checked_div(batch).unwrap_or(0);
    // A multiplicative hash of each column's bits, row by row, so that
    // `values` is read in order.
    let mut hashes = vec![0u64; batch];
    for row in values.chunks(batch.max(1)) {
        for (h, v) in hashes.iter_mut().zip(row) {
            *h = (*h ^ u64::from(v.to_bits()))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(23);
        }
    }
    let same = |a: usize, b: usize| {
        (0..rows).all(|k| values[k * batch + a].to_bits() == values[k * batch + b].to_bits())
    };
    let mut first = Vec::new();
    let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut of = Vec::with_capacity(batch);
    for (b, h) in hashes.into_iter().enumerate() {
        let groups = by_hash.entry(h).or_default();
        let group = match groups.iter().find(|&&g| same(first[g], b)) {
            Some(&g) => g,
            None => {
                groups.push(first.len());
                first.push(b);
                first.len() - 1
            }
        };
        of.push(group);
    }
    (first, of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_group_by_their_bits_in_order_of_first_appearance() {
        // Columns (rows = 2): a, b, a, c, b, where c differs from a only by
        // the sign of a zero.
        let values = [1.0, 2.0, 1.0, 1.0, 2.0, 0.0, 5.0, 0.0, -0.0, 5.0];
        let (first, of) = distinct_columns(&values, 5);
        assert_eq!(first, [0, 1, 3]);
        assert_eq!(of, [0, 1, 0, 2, 1]);
        assert_eq!(distinct_columns(&[], 0), (vec![], vec![]));
    }

    #[test]
    fn distinct_contexts_come_as_columns_and_as_rows() {
        let dev = Cpu::default();
        // (3, 4): columns x, y, x, x.
        let all = dev.tensor_from_vec(
            vec![1.0, 4.0, 1.0, 1.0, 2.0, 5.0, 2.0, 2.0, 3.0, 6.0, 3.0, 3.0],
            (3, 4),
        );
        let contexts = BatchContexts::new(all);
        let d = contexts.distinct().unwrap();
        assert_eq!(d.of, [0, 1, 0, 0]);
        assert_eq!(*d.columns.shape(), (3, 2));
        assert_eq!(d.columns.as_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(*d.rows, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
}

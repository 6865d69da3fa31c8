//! k-winners-take-all (Numenta's `KWinners`, without boosting): in every
//! example the k largest activations pass unchanged, the rest become 0, and
//! the gradient flows only through the winners. For convolutional maps the
//! competition runs over all channels and positions of an example together
//! (`KWinners2d` with `local=False`). dfdx has no top-k, so the winners are
//! chosen on the host and applied as a constant 0/1 mask.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::cpu::{mul_mask, to_host};
use super::Matrix;

/// Number of winners among `units` for a fraction `percent_on`, rounded as
/// nupic does (`round(units · percent_on)`), at least 1.
pub(crate) fn winners_for(units: usize, percent_on: f64) -> usize {
    ((units as f64 * percent_on).round() as usize).clamp(1, units.max(1))
}

/// Keeps the `k` largest values of every column of `h` (rows, batch).
pub(crate) fn kwta<D: Device<f32>, T: Tape<f32, D>>(h: Matrix<D, T>, k: usize) -> Matrix<D, T> {
    let (rows, batch) = *h.shape();
    let mask = winner_mask(&to_host(&h), rows, batch, k);
    mul_mask(h, mask)
}

/// Examples whose activations one parallel task reads together: a run of
/// 16 floats (one cache line) from each row, instead of one float per row.
const EXAMPLES_PER_TASK: usize = 16;

/// The 0/1 mask of the `k` largest entries of each column of `values`
/// (rows, batch), row-major. Ties go to the lower row, so the choice does
/// not depend on threads.
fn winner_mask(values: &[f32], rows: usize, batch: usize, k: usize) -> Vec<f32> {
    let k = k.min(rows);
    assert!(rows <= u32::MAX as usize, "a key holds a row in 32 bits");
    let blocks: Vec<Vec<u64>> = (0..batch.div_ceil(EXAMPLES_PER_TASK))
        .into_par_iter()
        .map(|block| {
            let b0 = block * EXAMPLES_PER_TASK;
            let nb = EXAMPLES_PER_TASK.min(batch - b0);
            // Each example's keys contiguous, then a partial sort of each.
            let mut keys = vec![0u64; nb * rows];
            for r in 0..rows {
                for (j, &v) in values[r * batch + b0..][..nb].iter().enumerate() {
                    keys[j * rows + r] = rank_key(v, r);
                }
            }
            let mut winners = Vec::with_capacity(nb * k);
            for column in keys.chunks_mut(rows) {
                if k > 0 && k < rows {
                    column.select_nth_unstable(k - 1);
                }
                winners.extend_from_slice(&column[..k]);
            }
            winners
        })
        .collect();
    let mut mask = vec![0.0f32; rows * batch];
    for (block, winners) in blocks.iter().enumerate() {
        for (j, keys) in winners.chunks(k.max(1)).enumerate() {
            let b = block * EXAMPLES_PER_TASK + j;
            for &key in keys {
                mask[row_of(key) * batch + b] = 1.0;
            }
        }
    }
    mask
}

/// A key that sorts `value` of row `row` before every smaller value (in
/// `f32::total_cmp`'s order), and before the same value in a later row:
/// the k smallest keys of an example are its winners. Integer keys sort
/// without branching on floats or reading the values again.
fn rank_key(value: f32, row: usize) -> u64 {
    let bits = value.to_bits();
    // Flipping the sign bit of positives and every bit of negatives orders
    // the bits as `total_cmp` orders the values; `!` makes it descending.
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(!ascending) << 32) | row as u64
}

/// The row a `rank_key` was made for.
fn row_of(key: u64) -> usize {
    (key & u64::from(u32::MAX)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_largest_per_example_and_routes_gradients_to_them() {
        let dev = Cpu::default();
        // Two examples (columns) of four units.
        let h: Matrix<Cpu> =
            dev.tensor_from_vec(vec![0.5, -1.0, 2.0, 3.0, -0.1, 0.2, 1.0, 0.2], (4, 2));
        let y = kwta(h.retaped::<OwnedTape<f32, Cpu>>(), 2);
        assert_eq!(y.as_vec(), vec![0.0, 0.0, 2.0, 3.0, 0.0, 0.2, 1.0, 0.0]);
        let grads = y.sum::<Rank0, _>().backward();
        assert_eq!(
            grads.get(&h).as_vec(),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
        );
    }

    /// The mask of a full sort by value (descending, in `total_cmp`'s
    /// order), ties to the lower row: the plain statement of the choice.
    fn mask_by_sorting(values: &[f32], rows: usize, batch: usize, k: usize) -> Vec<f32> {
        let mut mask = vec![0.0f32; rows * batch];
        for b in 0..batch {
            let mut order: Vec<usize> = (0..rows).collect();
            order.sort_by(|&x, &y| {
                values[y * batch + b]
                    .total_cmp(&values[x * batch + b])
                    .then(x.cmp(&y))
            });
            for &r in order.iter().take(k) {
                mask[r * batch + b] = 1.0;
            }
        }
        mask
    }

    /// On batches off the task size, with ties, zeros of both signs,
    /// infinities and NaNs, and k from none to all, the winners are those
    /// of a full sort.
    #[test]
    fn the_winners_are_those_of_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for (rows, batch) in [(1usize, 1usize), (7, 3), (64, 17), (300, 37), (2048, 40)] {
            let values: Vec<f32> = (0..rows * batch)
                .map(|_| match rng.gen_range(0..4) {
                    0 => special[rng.gen_range(0..special.len())],
                    1 => f32::from(rng.gen_range(-3i8..3)),
                    _ => rng.gen_range(-2.0..2.0),
                })
                .collect();
            for k in [
                0,
                1,
                rows / 20,
                rows / 2,
                rows.saturating_sub(1),
                rows,
                rows + 5,
            ] {
                assert_eq!(
                    winner_mask(&values, rows, batch, k),
                    mask_by_sorting(&values, rows, batch, k.min(rows)),
                    "rows {rows}, batch {batch}, k {k}"
                );
            }
        }
    }

    #[test]
    fn winner_counts_round_like_nupic() {
        assert_eq!(winners_for(2048, 0.05), 102);
        assert_eq!(winners_for(10, 0.01), 1);
        assert_eq!(winners_for(3, 2.0), 3);
    }
}

//! k-winners-take-all (Numenta's `KWinners`, without boosting): in every
//! example the k largest activations pass unchanged, the rest become 0, and
//! the gradient flows only through the winners. For convolutional maps the
//! competition runs over all channels and positions of an example together
//! (`KWinners2d` with `local=False`). dfdx has no top-k, so the winners are
//! chosen on the host and applied as a constant 0/1 mask.

use dfdx::prelude::*;

use super::cpu::{mul_mask, to_host, winner_mask};
use super::Matrix;

/// Number of winners among `units` for a fraction `percent_on`, rounded as
/// nupic does (`round(units · percent_on)`), at least 1.
pub(crate) fn winners_for(units: usize, percent_on: f64) -> usize {
    ((units as f64 * percent_on).round() as usize).clamp(1, units.max(1))
}

/// Keeps the `k` largest values of every column of `h` (rows, batch).
/// `mul_mask` copies `h` off its tensor a second time: handing it this copy
/// instead was measured slower on sparse-2048's evaluation (medians 9.4k,
/// 11.3k, 9.8k against 10.5k, 13.1k, 13.1k samples/s, interleaved), so it
/// was not kept.
pub(crate) fn kwta<D: Device<f32>, T: Tape<f32, D>>(h: Matrix<D, T>, k: usize) -> Matrix<D, T> {
    let (rows, batch) = *h.shape();
    let mask = winner_mask(&to_host(&h), rows, batch, k);
    mul_mask(h, mask)
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

    #[test]
    fn winner_counts_round_like_nupic() {
        assert_eq!(winners_for(2048, 0.05), 102);
        assert_eq!(winners_for(10, 0.01), 1);
        assert_eq!(winners_for(3, 2.0), 3);
    }
}

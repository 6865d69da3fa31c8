//! Fixed-chunk parallel loops: `for_each_chunk` and the size (`PAR_MIN`)
//! below which a loop stays on the calling thread. Every loop of `cpu` writes
//! disjoint output chunks and sums in a fixed order, so its results do not
//! depend on the number of threads.

use rayon::prelude::*;

/// Below this many elements a loop runs on the calling thread: handing
/// work to rayon's pool costs microseconds (much more on a loaded machine).
pub(super) const PAR_MIN: usize = 1 << 16;

/// `f(i, chunk)` for the `chunk`-sized pieces of `data`, in parallel when
/// `data` is large. Each call writes only its own chunk.
pub(super) fn for_each_chunk<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if data.len() < PAR_MIN {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

//! Fixed-chunk parallel loops: `for_each_chunk`, the size (`PAR_MIN`)
//! below which a loop stays on the calling thread, and `on_pool`, which runs
//! a whole computation on a pool thread so its loops start there. Every loop of `cpu` writes
//! disjoint output chunks and sums in a fixed order, so its results do not
//! depend on the number of threads.

use rayon::prelude::*;

/// Runs `work` on a thread of rayon's global pool and returns its result.
/// A parallel loop started from any other thread is handed to the pool and
/// waits for it on a futex, waking a worker and sleeping itself: a small
/// network's training step runs dozens of such loops, and the wake-ups were
/// a quarter of FC1's step at 3% density (`perf`, on one thread). Started
/// on a worker, a loop splits in place and the caller works on it.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_on_the_pool_runs_on_a_worker_and_returns_its_result() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "test threads are not workers"
        );
        let (worker, sum) = on_pool(|| {
            let sum: u64 = (0..1000u64).into_par_iter().sum();
            (rayon::current_thread_index(), sum)
        });
        assert!(worker.is_some(), "ran on the calling thread");
        assert_eq!(sum, 499_500);
    }
}

//! Wide-SIMD dispatch: `with_wide_simd` runs a closure compiled for AVX-512
//! or AVX2 when the CPU has it, for element-wise loops whose bits do not depend
//! on the vector width.

/// Runs `f` compiled for AVX-512 or AVX2, the widest the CPU has (the build
/// targets plain x86-64, whose SSE loops do 4 lanes where AVX2 does 8 and
/// AVX-512 16), otherwise as is. Element-wise f32 arithmetic gives the same
/// bits either way: no operation is fused or reordered.
pub(super) fn with_wide_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// `f`, inlined into a function compiled with AVX-512 enabled.
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// `f`, inlined into a function compiled with AVX2 enabled.
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU was just checked to support AVX-512F.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

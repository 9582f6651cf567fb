//! The exponential of the attention softmax, eight lanes at a time: libm's `expf` is scalar and was
//! a tenth of an ML-1M BERT4Rec LLM-ESR training profile, and `wide`'s SIMD exp is within a few ulps
//! of it (BENCHMARKS.md §2). Training's softmax and the inference path's both use it.

use wide::f32x8;

/// `exp` of eight lanes. NaN stays NaN, as libm gives it (`wide` alone maps NaN to 0, and a NaN
/// score must not turn into a zero weight unnoticed); arguments below about −87 give 0 where libm
/// gives a subnormal.
#[inline]
fn exp8(x: f32x8) -> f32x8 {
    x.is_nan().blend(x, x.exp())
}

/// Writes `exp(x · scale − shift)` of each `x` of `src` to `dst` (the shorter length) and returns
/// their sum.
pub fn exp_sum(src: &[f32], scale: f32, shift: f32, dst: &mut [f32]) -> f32 {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let (scale8, shift8) = (f32x8::splat(scale), f32x8::splat(shift));
    let mut acc = f32x8::ZERO;
    let mut outs = dst.chunks_exact_mut(8);
    let ins = src.chunks_exact(8);
    let rest = ins.remainder();
    for (o, i) in (&mut outs).zip(ins) {
        let e = exp8(f32x8::from(i).mul_sub(scale8, shift8));
        acc += e;
        o.copy_from_slice(&e.to_array());
    }
    let mut tail = 0f32;
    for (o, &x) in outs.into_remainder().iter_mut().zip(rest) {
        *o = (x * scale - shift).exp();
        tail += *o;
    }
    acc.reduce_add() + tail
}

/// Replaces each `x` of `xs` by `exp(x − shift)` and returns their sum: [`exp_sum`] with the
/// scores and the weights in one buffer, as the inference path keeps them.
#[inline]
pub fn exp_sum_in_place(xs: &mut [f32], shift: f32) -> f32 {
    let shift8 = f32x8::splat(shift);
    let mut acc = f32x8::ZERO;
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        let e = exp8(f32x8::from(&*c) - shift8);
        acc += e;
        c.copy_from_slice(&e.to_array());
    }
    let mut tail = 0f32;
    for x in chunks.into_remainder() {
        *x = (*x - shift).exp();
        tail += *x;
    }
    acc.reduce_add() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_within_a_few_ulps() {
        // Softmax arguments are at most 0; cover the whole useful range and the tail loop.
        let xs: Vec<f32> = (0..4001).map(|i| -90.0 + i as f32 * 0.0225).collect();
        let mut got = vec![0f32; xs.len()];
        let sum = exp_sum(&xs, 1.0, 0.0, &mut got);
        let mut want_sum = 0f64;
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.exp();
            want_sum += want as f64;
            if x > -87.0 {
                let rel = ((g - want) / want).abs();
                assert!(rel < 4.0 * f32::EPSILON, "exp({x}) = {g}, libm {want}");
            } else {
                assert!(g <= want.max(f32::MIN_POSITIVE), "exp({x}) = {g}");
            }
        }
        assert!(((sum as f64 - want_sum) / want_sum).abs() < 1e-6);
    }

    #[test]
    fn scales_shifts_and_keeps_nan() {
        let xs = [
            0.5f32,
            -1.0,
            2.0,
            f32::NAN,
            0.0,
            1.0,
            -3.0,
            4.0,
            0.25,
            f32::NEG_INFINITY,
        ];
        let mut got = [0f32; 10];
        let sum = exp_sum(&xs, 2.0, 1.0, &mut got);
        let want = |x: f32| (2.0 * x - 1.0).exp();
        for (i, x) in [0.5f32, -1.0, 2.0, 0.0, 1.0, -3.0, 4.0, 0.25]
            .iter()
            .enumerate()
        {
            let at = if i < 3 { i } else { i + 1 };
            assert!(
                (got[at] - want(*x)).abs() <= 4.0 * f32::EPSILON * want(*x),
                "{at}"
            );
        }
        assert!(got[3].is_nan());
        assert!(sum.is_nan());
        assert_eq!(got[9], 0.0);
        let mut out = [0f32; 11];
        assert!((exp_sum(&[1.0f32; 11], 1.0, 1.0, &mut out) - 11.0).abs() < 1e-5);
    }

    #[test]
    fn in_place_matches_the_two_buffer_form() {
        let xs: Vec<f32> = (0..29)
            .map(|i| (i as f32 * 0.37).sin() * 9.0 - 4.0)
            .collect();
        let mut want = vec![0f32; xs.len()];
        let want_sum = exp_sum(&xs, 1.0, 2.5, &mut want);
        let mut got = xs.clone();
        got[3] = f32::NAN;
        want[3] = f32::NAN;
        let got_sum = exp_sum_in_place(&mut got, 2.5);
        assert!(got_sum.is_nan());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits() == w.to_bits(), "{i}: {g} against {w}");
        }
        let mut finite = xs.clone();
        assert_eq!(exp_sum_in_place(&mut finite, 2.5), want_sum);
    }
}

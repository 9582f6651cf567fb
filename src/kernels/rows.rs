//! The loops over many rows that inference spends its time in — scoring a catalogue, a linear
//! layer, LayerNorm — compiled once per instruction set and picked at run time.
//!
//! A distributable binary targets baseline x86-64 (SSE2), where the int8 → f32 widening of the
//! quantized tables stays scalar and the f32 loops run four lanes wide. `multiversion` compiles a
//! second copy of each loop for AVX2 (and one for SSE4.1) and calls the best one the CPU has;
//! the `#[inline]` kernels of [`super::dot`] are inlined into each copy. FMA is not enabled and
//! Rust never contracts `a * b + c` on its own, and the kernels fix their summation order (eight
//! accumulators), so every copy gives the same bits as the baseline one (tested below). In wasm
//! only the default copy exists, with the `simd128` kernels.

use super::dot::{dot, dot_f16, weighted_rows, weighted_rows_pair, QueryQ8};
use multiversion::multiversion;

/// `scores[i] += u · row_i` for f32 rows of `width`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn add_scores_f32(u: &[f32], rows: &[f32], width: usize, scores: &mut [f32]) {
    for (s, row) in scores.iter_mut().zip(rows.chunks_exact(width)) {
        *s += dot(u, row);
    }
}

/// `scores[i] += u · row_i` for f16 rows of `width`.
#[multiversion(targets("x86_64+avx2+fma+f16c", "x86_64+sse4.1"))]
pub fn add_scores_f16(u: &[f32], rows: &[half::f16], width: usize, scores: &mut [f32]) {
    for (s, row) in scores.iter_mut().zip(rows.chunks_exact(width)) {
        *s += dot_f16(u, row);
    }
}

/// `scores[i] += u · row_i` for Q8_0 rows of `width` (one scale per block of [`BLOCK`](super::dot::BLOCK)), with the
/// query quantized too ([`QueryQ8`]).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn add_scores_q8(u: &QueryQ8, scales: &[f32], qs: &[i8], width: usize, scores: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    super::dot::simd::add_scores_q8(u, scales, qs, width, scores);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        use super::dot::{dot_q8, BLOCK};
        let bpr = width / BLOCK;
        for ((s, row), sc) in scores
            .iter_mut()
            .zip(qs.chunks_exact(width))
            .zip(scales.chunks_exact(bpr))
        {
            *s += dot_q8(u, sc, row);
        }
    }
}

/// `scores[i] += u · row_i` for Q4_0 rows of `width` (two values a byte), with the query quantized
/// to Q8_0 ([`QueryQ8`]).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn add_scores_q4(u: &QueryQ8, scales: &[f32], qs: &[u8], width: usize, scores: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    super::dot::simd::add_scores_q4(u, scales, qs, width, scores);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        use super::dot::{dot_q4, BLOCK};
        let bpr = width / BLOCK;
        for ((s, row), sc) in scores
            .iter_mut()
            .zip(qs.chunks_exact(width / 2))
            .zip(scales.chunks_exact(bpr))
        {
            *s += dot_q4(u, sc, row);
        }
    }
}

/// A linear layer over rows: `out[r][o] = Σ_i x_r[i] · wt[i][o] + b[o]`, `wt` the transpose of
/// torch's `[out, in]` weight (`[in, out]`), so each input value scales one contiguous weight row
/// ([`weighted_rows`]).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn linear(x: &[f32], wt: &[f32], b: Option<&[f32]>, n_in: usize, out: &mut [f32]) {
    let n_out = wt.len() / n_in;
    let mut pairs = x
        .chunks_exact(2 * n_in)
        .zip(out.chunks_exact_mut(2 * n_out));
    for (x2, o2) in pairs.by_ref() {
        let (x0, x1) = x2.split_at(n_in);
        let (o0, o1) = o2.split_at_mut(n_out);
        weighted_rows_pair([x0, x1], wt, n_out, 0, [o0, o1]);
    }
    let done = x.len() / (2 * n_in) * 2;
    if let (Some(xr), Some(or)) = (
        x.chunks_exact(n_in).nth(done),
        out.chunks_exact_mut(n_out).nth(done),
    ) {
        weighted_rows(xr, wt, n_out, 0, or);
    }
    if let Some(b) = b {
        for or in out.chunks_exact_mut(n_out) {
            for (y, b) in or.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
}

/// LayerNorm of each row of `x` (rows of `w.len()`) into `out`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (i, (o, v)) in or.iter_mut().zip(xr).enumerate() {
            *o = (v - mean) * inv * w[i] + b[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dot::{dot_q4, dot_q8, BLOCK};
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    /// Each loop, whichever copy the CPU gets, gives the bits of the row-by-row kernel calls the
    /// baseline build makes (and the wasm build makes with its own kernels).
    #[test]
    fn dispatched_loops_equal_the_plain_kernels_to_the_bit() {
        let (w, n) = (64, 37);
        let u = values(w, 1);
        let rows = values(w * n, 2);
        let mut got = vec![0.5f32; n];
        add_scores_f32(&u, &rows, w, &mut got);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(
                g.to_bits(),
                (0.5 + dot(&u, &rows[i * w..(i + 1) * w])).to_bits()
            );
        }
        let halves: Vec<half::f16> = rows.iter().map(|&v| half::f16::from_f32(v)).collect();
        let mut got = vec![0f32; n];
        add_scores_f16(&u, &halves, w, &mut got);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(
                g.to_bits(),
                dot_f16(&u, &halves[i * w..(i + 1) * w]).to_bits()
            );
        }
        let qs: Vec<i8> = (0..w * n).map(|i| (i * 37 % 255) as u8 as i8).collect();
        let nib: Vec<u8> = (0..w * n / 2).map(|i| (i * 91 % 256) as u8).collect();
        let scales = values(n * w / BLOCK, 3);
        let (mut q8, mut q4) = (vec![0f32; n], vec![0f32; n]);
        let uq = QueryQ8::new(&u);
        add_scores_q8(&uq, &scales, &qs, w, &mut q8);
        add_scores_q4(&uq, &scales, &nib, w, &mut q4);
        for i in 0..n {
            let sc = &scales[i * 2..i * 2 + 2];
            assert_eq!(
                q8[i].to_bits(),
                dot_q8(&uq, sc, &qs[i * w..(i + 1) * w]).to_bits()
            );
            assert_eq!(
                q4[i].to_bits(),
                dot_q4(&uq, sc, &nib[i * 32..(i + 1) * 32]).to_bits()
            );
        }
        let (n_in, n_out, r) = (24, 40, 5);
        // An odd row count: pairs of rows, and one row on its own.
        let x = values(n_in * r, 4);
        let wt = values(n_in * n_out, 5);
        let b = values(n_out, 6);
        let mut out = vec![0f32; r * n_out];
        linear(&x, &wt, Some(&b), n_in, &mut out);
        for (k, y) in out.iter().enumerate() {
            let (row, o) = (k / n_out, k % n_out);
            let mut want = 0f32;
            for i in 0..n_in {
                want += x[row * n_in + i] * wt[i * n_out + o];
            }
            assert_eq!(y.to_bits(), (want + b[o]).to_bits());
        }
    }
}

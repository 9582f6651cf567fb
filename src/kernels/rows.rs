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

use super::dot::{dot, dot_f16, dot_q4, dot_q8, QueryQ8, BLOCK};
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

/// `scores[i] += u · row_i` for Q8_0 rows of `width` (one scale per block of [`BLOCK`]), with the
/// query quantized too ([`QueryQ8`]).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn add_scores_q8(u: &QueryQ8, scales: &[f32], qs: &[i8], width: usize, scores: &mut [f32]) {
    let bpr = width / BLOCK;
    for ((s, row), sc) in scores
        .iter_mut()
        .zip(qs.chunks_exact(width))
        .zip(scales.chunks_exact(bpr))
    {
        *s += dot_q8(u, sc, row);
    }
}

/// `scores[i] += u · row_i` for Q4_0 rows of `width` (two values a byte), with the query quantized
/// to Q8_0 ([`QueryQ8`]).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn add_scores_q4(u: &QueryQ8, scales: &[f32], qs: &[u8], width: usize, scores: &mut [f32]) {
    let bpr = width / BLOCK;
    for ((s, row), sc) in scores
        .iter_mut()
        .zip(qs.chunks_exact(width / 2))
        .zip(scales.chunks_exact(bpr))
    {
        *s += dot_q4(u, sc, row);
    }
}

/// A linear layer over rows: `out[r][o] = x_r · w_o + b[o]`, `w` in torch's `[out, in]` layout.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn linear(x: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, out: &mut [f32]) {
    let n_out = w.len() / n_in;
    for (xr, or) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        for (o, (y, wr)) in or.iter_mut().zip(w.chunks_exact(n_in)).enumerate() {
            *y = dot(xr, wr) + b.map_or(0.0, |b| b[o]);
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
        let (n_in, n_out, r) = (24, 10, 5);
        let x = values(n_in * r, 4);
        let wt = values(n_in * n_out, 5);
        let b = values(n_out, 6);
        let mut out = vec![0f32; r * n_out];
        linear(&x, &wt, Some(&b), n_in, &mut out);
        for (k, y) in out.iter().enumerate() {
            let (row, o) = (k / n_out, k % n_out);
            let want = dot(
                &x[row * n_in..(row + 1) * n_in],
                &wt[o * n_in..(o + 1) * n_in],
            ) + b[o];
            assert_eq!(y.to_bits(), want.to_bits());
        }
    }
}

//! The inner loops of inference: dot products over f32 and over the block-quantized row formats,
//! and the residual add.
//! Eight independent accumulators let LLVM keep whole SIMD registers busy (wasm `simd128`, SSE/AVX
//! natively) instead of one serial chain of additions.

/// Values per GGML block (Q8_0 and Q4_0).
pub const BLOCK: usize = 32;

#[inline(always)]
fn reduce(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `x += e` elementwise over the shorter length: the residual connections.
#[inline]
pub fn add_into(x: &mut [f32], e: &[f32]) {
    for (a, b) in x.iter_mut().zip(e) {
        *a += b;
    }
}

/// `a · b` over the shorter length.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    reduce(acc) + tail
}

/// `u · row` for an f16 row.
#[inline(always)]
pub fn dot_f16(u: &[f32], row: &[half::f16]) -> f32 {
    let mut acc = [0f32; 8];
    let cu = u.chunks_exact(8);
    let cr = row.chunks_exact(8);
    let tail: f32 = cu
        .remainder()
        .iter()
        .zip(cr.remainder())
        .map(|(x, y)| x * y.to_f32())
        .sum();
    for (x, y) in cu.zip(cr) {
        for i in 0..8 {
            acc[i] += x[i] * y[i].to_f32();
        }
    }
    reduce(acc) + tail
}

/// `u · row` for a Q8_0 row: per block, the scale times the dot of the int8 values with `u`.
#[inline(always)]
pub fn dot_q8(u: &[f32], scales: &[f32], qs: &[i8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::dot_q8(u, scales, qs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot_q8_portable(u, scales, qs)
}

/// `u · row` for a Q4_0 row: each block packs 32 four-bit values offset by 8, the low nibbles
/// holding values 0..16 and the high nibbles 16..32 (GGML's layout).
#[inline(always)]
pub fn dot_q4(u: &[f32], scales: &[f32], qs: &[u8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::dot_q4(u, scales, qs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot_q4_portable(u, scales, qs)
}

#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
fn dot_q8_portable(u: &[f32], scales: &[f32], qs: &[i8]) -> f32 {
    let mut total = 0f32;
    for ((ub, qb), s) in u
        .chunks_exact(BLOCK)
        .zip(qs.chunks_exact(BLOCK))
        .zip(scales)
    {
        let mut acc = [0f32; 8];
        for (x, q) in ub.chunks_exact(8).zip(qb.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += x[i] * q[i] as f32;
            }
        }
        total += s * reduce(acc);
    }
    total
}

#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
fn dot_q4_portable(u: &[f32], scales: &[f32], qs: &[u8]) -> f32 {
    let mut total = 0f32;
    for ((ub, qb), s) in u
        .chunks_exact(BLOCK)
        .zip(qs.chunks_exact(BLOCK / 2))
        .zip(scales)
    {
        let (lo, hi) = ub.split_at(BLOCK / 2);
        let mut acc = [0f32; 8];
        for ((xl, xh), q) in lo
            .chunks_exact(8)
            .zip(hi.chunks_exact(8))
            .zip(qb.chunks_exact(8))
        {
            for i in 0..8 {
                let l = (q[i] & 0x0f) as i32 - 8;
                let h = (q[i] >> 4) as i32 - 8;
                acc[i] += xl[i] * l as f32 + xh[i] * h as f32;
            }
        }
        total += s * reduce(acc);
    }
    total
}

/// wasm `simd128` versions of the block kernels. LLVM leaves the int8 → f32 widening of the
/// portable loops scalar, which made Q8_0 scoring slower than f32; these widen 16 values per
/// instruction. Lanes 0–3 and 4–7 are the portable code's accumulators 0–3 and 4–7, and every sum
/// is taken in the portable order, so both give bit-identical scores (the browser parity tests
/// compare them).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::BLOCK;
    use core::arch::wasm32::*;

    /// Four f32 from `x[at..at + 4]`.
    #[inline(always)]
    fn load4(x: &[f32], at: usize) -> v128 {
        let s = &x[at..at + 4];
        // SAFETY: `s` holds four f32 (16 bytes), and wasm loads need no alignment.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// Sixteen bytes from `x[at..at + 16]`.
    #[inline(always)]
    fn load16<T: Copy>(x: &[T], at: usize) -> v128 {
        assert!(std::mem::size_of::<T>() == 1);
        let s = &x[at..at + 16];
        // SAFETY: `s` holds sixteen one-byte values, and wasm loads need no alignment.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// The four f32 of int8 lanes `4k..4k + 4` of `q`.
    #[inline(always)]
    fn widen(q: v128) -> [v128; 4] {
        let lo = i16x8_extend_low_i8x16(q);
        let hi = i16x8_extend_high_i8x16(q);
        [
            f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)),
            f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)),
            f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)),
            f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)),
        ]
    }

    /// The portable `reduce` of accumulators 0–3 (`a`) and 4–7 (`b`).
    #[inline(always)]
    fn reduce(a: v128, b: v128) -> f32 {
        let s = f32x4_add(a, b);
        (f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s))
            + (f32x4_extract_lane::<2>(s) + f32x4_extract_lane::<3>(s))
    }

    pub fn dot_q8(u: &[f32], scales: &[f32], qs: &[i8]) -> f32 {
        let mut total = 0f32;
        for (b, s) in scales.iter().enumerate() {
            let (o, ub) = (b * BLOCK, &u[b * BLOCK..(b + 1) * BLOCK]);
            let (mut a, mut c) = (f32x4_splat(0.0), f32x4_splat(0.0));
            for half in 0..2 {
                let w = widen(load16(qs, o + 16 * half));
                let at = 16 * half;
                a = f32x4_add(a, f32x4_mul(load4(ub, at), w[0]));
                c = f32x4_add(c, f32x4_mul(load4(ub, at + 4), w[1]));
                a = f32x4_add(a, f32x4_mul(load4(ub, at + 8), w[2]));
                c = f32x4_add(c, f32x4_mul(load4(ub, at + 12), w[3]));
            }
            total += s * reduce(a, c);
        }
        total
    }

    pub fn dot_q4(u: &[f32], scales: &[f32], qs: &[u8]) -> f32 {
        let mut total = 0f32;
        let (mask, eight) = (u8x16_splat(0x0f), i8x16_splat(8));
        for (b, s) in scales.iter().enumerate() {
            let ub = &u[b * BLOCK..(b + 1) * BLOCK];
            let q = load16(qs, b * BLOCK / 2);
            let l = widen(i8x16_sub(v128_and(q, mask), eight));
            let h = widen(i8x16_sub(u8x16_shr(q, 4), eight));
            let (mut a, mut c) = (f32x4_splat(0.0), f32x4_splat(0.0));
            // Portable order: acc[i] += xl[i] * l[i] + xh[i] * h[i], nibbles 0..8 then 8..16.
            for k in 0..2 {
                let at = 8 * k;
                let lo_a = f32x4_mul(load4(ub, at), l[2 * k]);
                let hi_a = f32x4_mul(load4(ub, 16 + at), h[2 * k]);
                a = f32x4_add(a, f32x4_add(lo_a, hi_a));
                let lo_c = f32x4_mul(load4(ub, at + 4), l[2 * k + 1]);
                let hi_c = f32x4_mul(load4(ub, 16 + at + 4), h[2 * k + 1]);
                c = f32x4_add(c, f32x4_add(lo_c, hi_c));
            }
            total += s * reduce(a, c);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-5, "n={n}");
        }
    }

    #[test]
    fn q4_nibbles_follow_the_ggml_layout() {
        let u: Vec<f32> = (0..32).map(|i| i as f32).collect();
        // Byte j holds value j (low nibble) and value j+16 (high nibble), both offset by 8.
        let qs: Vec<u8> = (0..16).map(|j| (j as u8 % 16) | (15 << 4)).collect();
        let expect: f32 = (0..16)
            .map(|j| j as f32 * (j as f32 - 8.0) + (j + 16) as f32 * 7.0)
            .sum();
        assert!((dot_q4(&u, &[0.5], &qs) - 0.5 * expect).abs() < 1e-3);
        let q8: Vec<i8> = (0..32).map(|i| i as i8 - 16).collect();
        let e8: f32 = (0..32).map(|i| i as f32 * (i as f32 - 16.0)).sum();
        assert!((dot_q8(&u, &[2.0], &q8) - 2.0 * e8).abs() < 1e-2);
    }
}

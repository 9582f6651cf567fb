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

/// A query vector quantized to Q8_0 blocks for the quantized tables' kernels.
///
/// With both sides int8, each block is an integer dot product (as llama.cpp's Q8_0 × Q8_0): exact,
/// so every instruction set gives the same bits, and a third of the instructions per value of
/// widening each stored int8 to f32 against an f32 query. The cost is the query's rounding, at most
/// half a step (`max|x| / 254`) per value.
///
/// Each block's products are summed in four integer lanes, lane `k` holding the values whose
/// position `e` has `(e % 8) / 2 == k` — the lanes wasm's `i16x8.extmul` and
/// `i32x4.extadd_pairwise` leave them in — and each lane is scaled and accumulated in f32 on its
/// own, the four added at the end, so the portable and the SIMD kernels give the same bits.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryQ8 {
    /// One scale per block: the block's largest magnitude over 127 (0 for an all-zero block).
    pub scales: Vec<f32>,
    /// `round(x / scale)`, in −127..=127.
    pub qs: Vec<i8>,
    /// Per block and lane, 8 × the lane's query values: Q4_0 stores `value + 8`, and subtracting
    /// this once per block costs less than subtracting 8 from every nibble.
    pub offsets: Vec<i32>,
}

/// The lane of the value at position `e` of a block ([`QueryQ8`]).
#[inline(always)]
const fn lane(e: usize) -> usize {
    (e % 8) / 2
}

impl QueryQ8 {
    /// Quantizes `u`, whose length is a multiple of [`BLOCK`] (the tables' widths are).
    pub fn new(u: &[f32]) -> Self {
        debug_assert_eq!(u.len() % BLOCK, 0);
        let mut scales = Vec::with_capacity(u.len() / BLOCK);
        let mut qs = Vec::with_capacity(u.len());
        let mut offsets = Vec::with_capacity(u.len() / BLOCK * 4);
        for block in u.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            scales.push(d);
            let mut lanes = [0i32; 4];
            for (e, x) in block.iter().enumerate() {
                let q = (x * id).round().clamp(-127.0, 127.0) as i8;
                lanes[lane(e)] += 8 * q as i32;
                qs.push(q);
            }
            offsets.extend_from_slice(&lanes);
        }
        QueryQ8 {
            scales,
            qs,
            offsets,
        }
    }

    /// The values the kernels multiply with.
    pub fn dequantized(&self) -> Vec<f32> {
        self.qs
            .chunks_exact(BLOCK)
            .zip(&self.scales)
            .flat_map(|(b, &d)| b.iter().map(move |&q| q as f32 * d))
            .collect()
    }
}

/// `q · row` for a Q8_0 row: per block, the two scales times the integer dot of the values.
#[inline(always)]
pub fn dot_q8(q: &QueryQ8, scales: &[f32], qs: &[i8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::dot_q8(q, scales, qs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot_q8_portable(q, scales, qs)
}

/// `q · row` for a Q4_0 row: each block packs 32 four-bit values offset by 8, the low nibbles
/// holding values 0..16 and the high nibbles 16..32 (GGML's layout).
#[inline(always)]
pub fn dot_q4(q: &QueryQ8, scales: &[f32], qs: &[u8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::dot_q4(q, scales, qs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot_q4_portable(q, scales, qs)
}

/// Adds each lane's sum, times the block's two scales, to its f32 accumulator.
#[inline(always)]
fn accumulate(acc: &mut [f32; 4], lanes: [i32; 4], d: f32) {
    for k in 0..4 {
        acc[k] += lanes[k] as f32 * d;
    }
}

#[inline(always)]
fn reduce4(acc: [f32; 4]) -> f32 {
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
fn dot_q8_portable(q: &QueryQ8, scales: &[f32], qs: &[i8]) -> f32 {
    let mut acc = [0f32; 4];
    for (((ub, qb), s), us) in
        q.qs.chunks_exact(BLOCK)
            .zip(qs.chunks_exact(BLOCK))
            .zip(scales)
            .zip(&q.scales)
    {
        let mut lanes = [0i32; 4];
        for (x, y) in ub.chunks_exact(8).zip(qb.chunks_exact(8)) {
            for k in 0..4 {
                lanes[k] +=
                    x[2 * k] as i32 * y[2 * k] as i32 + x[2 * k + 1] as i32 * y[2 * k + 1] as i32;
            }
        }
        accumulate(&mut acc, lanes, s * us);
    }
    reduce4(acc)
}

#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
fn dot_q4_portable(q: &QueryQ8, scales: &[f32], qs: &[u8]) -> f32 {
    let mut acc = [0f32; 4];
    for ((((ub, qb), s), us), off) in
        q.qs.chunks_exact(BLOCK)
            .zip(qs.chunks_exact(BLOCK / 2))
            .zip(scales)
            .zip(&q.scales)
            .zip(q.offsets.chunks_exact(4))
    {
        // Byte j holds value j (low nibble) and value j + 16 (high nibble): both in lane(j).
        let (lo, hi) = ub.split_at(BLOCK / 2);
        let mut lanes = [0i32; 4];
        for ((xl, xh), b) in lo
            .chunks_exact(8)
            .zip(hi.chunks_exact(8))
            .zip(qb.chunks_exact(8))
        {
            for (k, lane) in lanes.iter_mut().enumerate() {
                for t in [2 * k, 2 * k + 1] {
                    *lane +=
                        (b[t] & 0x0f) as i32 * xl[t] as i32 + (b[t] >> 4) as i32 * xh[t] as i32;
                }
            }
        }
        for (l, o) in lanes.iter_mut().zip(off) {
            *l -= o;
        }
        accumulate(&mut acc, lanes, s * us);
    }
    reduce4(acc)
}

/// wasm `simd128` versions of the block kernels: `i16x8.extmul` multiplies int8 lanes into i16
/// and `i32x4.extadd_pairwise` adds neighbours into the four lanes [`QueryQ8`] describes, whose
/// integer sums and per-lane f32 steps are the portable ones, so both give the same bits (the
/// browser parity tests compare them).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{QueryQ8, BLOCK};
    use core::arch::wasm32::*;

    /// Lane sums of sixteen int8 products (each at most 128² = 16384, so i16 holds them).
    #[inline(always)]
    fn products(r: v128, u: v128) -> v128 {
        i32x4_add(
            i32x4_extadd_pairwise_i16x8(i16x8_extmul_low_i8x16(r, u)),
            i32x4_extadd_pairwise_i16x8(i16x8_extmul_high_i8x16(r, u)),
        )
    }

    #[inline(always)]
    fn step(acc: v128, lanes: v128, d: f32) -> v128 {
        f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(lanes), f32x4_splat(d)))
    }

    #[inline(always)]
    fn reduce(acc: v128) -> f32 {
        (f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<1>(acc))
            + (f32x4_extract_lane::<2>(acc) + f32x4_extract_lane::<3>(acc))
    }

    // Called once per catalogue row: the lengths are checked once, and the loads inside go
    // without a bounds check each.
    #[inline(always)]
    pub fn dot_q8(q: &QueryQ8, scales: &[f32], qs: &[i8]) -> f32 {
        let blocks = scales.len();
        assert!(
            qs.len() >= blocks * BLOCK && q.qs.len() >= blocks * BLOCK && q.scales.len() >= blocks
        );
        let (r, u) = (qs.as_ptr() as *const v128, q.qs.as_ptr() as *const v128);
        let mut acc = f32x4_splat(0.0);
        for b in 0..blocks {
            // SAFETY: block b's 32 bytes (two v128) lie within both slices (asserted above), and
            // wasm loads need no alignment.
            let lanes = unsafe {
                i32x4_add(
                    products(v128_load(r.add(2 * b)), v128_load(u.add(2 * b))),
                    products(v128_load(r.add(2 * b + 1)), v128_load(u.add(2 * b + 1))),
                )
            };
            // SAFETY: b < blocks, and both scale slices hold at least `blocks`.
            let d = unsafe { scales.get_unchecked(b) * q.scales.get_unchecked(b) };
            acc = step(acc, lanes, d);
        }
        reduce(acc)
    }

    #[inline(always)]
    pub fn dot_q4(q: &QueryQ8, scales: &[f32], qs: &[u8]) -> f32 {
        let blocks = scales.len();
        assert!(
            qs.len() >= blocks * BLOCK / 2
                && q.qs.len() >= blocks * BLOCK
                && q.scales.len() >= blocks
                && q.offsets.len() >= blocks * 4
        );
        let r = qs.as_ptr() as *const v128;
        let u = q.qs.as_ptr() as *const v128;
        let off = q.offsets.as_ptr() as *const v128;
        let mask = u8x16_splat(0x0f);
        let mut acc = f32x4_splat(0.0);
        for b in 0..blocks {
            // SAFETY: block b's 16 packed bytes, its 32 query bytes and its four offsets lie
            // within their slices (asserted above), and wasm loads need no alignment.
            let (packed, ul, uh, o) = unsafe {
                (
                    v128_load(r.add(b)),
                    v128_load(u.add(2 * b)),
                    v128_load(u.add(2 * b + 1)),
                    v128_load(off.add(b)),
                )
            };
            let (lo, hi) = (v128_and(packed, mask), u8x16_shr(packed, 4));
            // Nibbles are 0..16 and the query −127..=127: four products stay within i16.
            let sum16 = i16x8_add(
                i16x8_add(
                    i16x8_extmul_low_i8x16(lo, ul),
                    i16x8_extmul_high_i8x16(lo, ul),
                ),
                i16x8_add(
                    i16x8_extmul_low_i8x16(hi, uh),
                    i16x8_extmul_high_i8x16(hi, uh),
                ),
            );
            let lanes = i32x4_sub(i32x4_extadd_pairwise_i16x8(sum16), o);
            // SAFETY: b < blocks, and both scale slices hold at least `blocks`.
            let d = unsafe { scales.get_unchecked(b) * q.scales.get_unchecked(b) };
            acc = step(acc, lanes, d);
        }
        reduce(acc)
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
        // Integers up to 127 quantize exactly: the largest magnitude 127 gives scale 1.
        let u: Vec<f32> = (0..32).map(|i| 127.0 - (i * 4) as f32).collect();
        let q = QueryQ8::new(&u);
        assert_eq!(q.scales, vec![1.0]);
        assert_eq!(q.dequantized(), u);
        // Byte j holds value j (low nibble) and value j+16 (high nibble), both offset by 8.
        let qs: Vec<u8> = (0..16).map(|j| (j as u8 % 16) | (15 << 4)).collect();
        let expect: f32 = (0..16)
            .map(|j| u[j] * (j as f32 - 8.0) + u[j + 16] * 7.0)
            .sum();
        assert_eq!(dot_q4(&q, &[0.5], &qs), 0.5 * expect);
        let q8: Vec<i8> = (0..32).map(|i| i as i8 - 16).collect();
        let e8: f32 = (0..32).map(|i| u[i] * (i as f32 - 16.0)).sum();
        assert_eq!(dot_q8(&q, &[2.0], &q8), 2.0 * e8);
    }

    #[test]
    fn the_quantized_query_is_within_half_a_step_of_the_vector() {
        let u: Vec<f32> = (0..96)
            .map(|i| (i as f32 * 0.77).sin() * (1 + i / 32) as f32)
            .collect();
        let q = QueryQ8::new(&u);
        let back = q.dequantized();
        for (b, (ub, bb)) in u.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
            let amax = ub.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert_eq!(q.scales[b], amax / 127.0);
            assert!(q.qs[b * BLOCK..(b + 1) * BLOCK]
                .iter()
                .any(|v| v.abs() == 127));
            for (x, y) in ub.iter().zip(bb) {
                assert!((x - y).abs() <= q.scales[b] * 0.5 + 1e-6, "{x} vs {y}");
            }
        }
        let zero = QueryQ8::new(&[0.0; 32]);
        assert_eq!(
            (zero.scales[0], zero.qs.iter().all(|&v| v == 0)),
            (0.0, true)
        );
        // The offsets are 8 × each lane's values.
        for (b, off) in q.offsets.chunks(4).enumerate() {
            for (k, &o) in off.iter().enumerate() {
                let lane_sum: i32 = (0..BLOCK)
                    .filter(|e| lane(*e) == k)
                    .map(|e| q.qs[b * BLOCK + e] as i32)
                    .sum();
                assert_eq!(o, 8 * lane_sum);
            }
        }
    }

    /// The lane-wise kernels equal the plain dot of the stored values (the f32 steps differ only
    /// in rounding), for rows of several blocks and for extreme values.
    #[test]
    fn block_kernels_equal_the_plain_dot_of_the_stored_values() {
        let w = 96;
        let u: Vec<f32> = (0..w).map(|i| (i as f32 * 1.37).cos() * 3.0).collect();
        let q = QueryQ8::new(&u);
        let qv = q.dequantized();
        let scales = [0.5f32, 1.25, 0.01];
        let close = |got: f32, want: f32| (got - want).abs() <= 1e-4 * want.abs().max(1.0);
        for seed in 0..4u32 {
            let row8: Vec<i8> = (0..w as u32)
                .map(|i| match seed {
                    0 => 127,
                    1 => -127,
                    _ => ((i * 97 + seed * 31) % 255) as u8 as i8,
                })
                .collect();
            let want8: f32 = (0..w)
                .map(|i| row8[i] as f32 * scales[i / BLOCK] * qv[i])
                .sum();
            let got8 = dot_q8(&q, &scales, &row8);
            assert!(close(got8, want8), "q8 seed {seed}: {got8} vs {want8}");
            let nib: Vec<u8> = (0..w as u32 / 2)
                .map(|i| match seed {
                    0 => 0xff,
                    1 => 0x00,
                    _ => ((i * 53 + seed * 7) % 256) as u8,
                })
                .collect();
            let value = |i: usize| {
                let (b, e) = (i / BLOCK, i % BLOCK);
                let byte = nib[b * BLOCK / 2 + e % (BLOCK / 2)];
                (if e < BLOCK / 2 {
                    byte & 0x0f
                } else {
                    byte >> 4
                }) as f32
                    - 8.0
            };
            let want4: f32 = (0..w).map(|i| value(i) * scales[i / BLOCK] * qv[i]).sum();
            let got4 = dot_q4(&q, &scales, &nib);
            assert!(close(got4, want4), "q4 seed {seed}: {got4} vs {want4}");
        }
    }
}

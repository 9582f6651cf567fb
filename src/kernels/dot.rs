//! The inner loops of inference: dot products over f32 and over the block-quantized row formats,
//! the weighted sum of rows that the encoder's products reduce to, and the residual add.
//! Eight independent accumulators let LLVM keep whole SIMD registers busy (wasm `simd128`, SSE/AVX
//! natively) instead of one serial chain of additions.

/// Values of `out` that [`weighted_rows`] keeps in registers at once.
const STRETCH: usize = 32;

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

/// `out = Σ_j w[j] · rows[j]`, where row `j` is `out.len()` values at `at + j * stride` of `rows`,
/// each value summed over `j` in order from zero. Every 32-value stretch of `out` stays in eight
/// independent SIMD accumulators (four-lane `simd128` registers) across all the rows: no horizontal
/// sums, and no chain of dependent additions that a dot product per output would wait on. The
/// linear layers (`x · Wᵀ` against the transposed weights), attention's logits (against the
/// transposed keys) and its weighted sum of values are all this loop.
#[inline(always)]
pub fn weighted_rows(w: &[f32], rows: &[f32], stride: usize, at: usize, out: &mut [f32]) {
    let width = out.len();
    assert!(w.is_empty() || at + (w.len() - 1) * stride + width <= rows.len());
    let mut c = 0;
    while c + STRETCH <= width {
        let mut acc = [0f32; STRETCH];
        for (j, &wj) in w.iter().enumerate() {
            let start = at + j * stride + c;
            let y: &[f32; STRETCH] = rows[start..start + STRETCH].try_into().unwrap();
            for i in 0..STRETCH {
                acc[i] += wj * y[i];
            }
        }
        out[c..c + STRETCH].copy_from_slice(&acc);
        c += STRETCH;
    }
    while c + 8 <= width {
        let mut acc = [0f32; 8];
        for (j, &wj) in w.iter().enumerate() {
            let start = at + j * stride + c;
            let y: &[f32; 8] = rows[start..start + 8].try_into().unwrap();
            for i in 0..8 {
                acc[i] += wj * y[i];
            }
        }
        out[c..c + 8].copy_from_slice(&acc);
        c += 8;
    }
    for o in out[c..].iter_mut() {
        *o = 0.0;
    }
    for (j, &wj) in w.iter().enumerate() {
        let start = at + j * stride;
        for (o, y) in out[c..].iter_mut().zip(&rows[start + c..start + width]) {
            *o += wj * y;
        }
    }
}

/// [`weighted_rows`] for two weight vectors over the same rows at once, with the bits
/// of two separate calls: each loaded row value serves both outputs, half the loads of a linear
/// layer's product over its weight rows, and sixteen values per output keep the sixteen
/// accumulators within the registers of four-lane SIMD.
#[inline(always)]
pub fn weighted_rows_pair(
    w: [&[f32]; 2],
    rows: &[f32],
    stride: usize,
    at: usize,
    out: [&mut [f32]; 2],
) {
    let [w0, w1] = w;
    let [o0, o1] = out;
    let width = o0.len();
    assert!(w0.len() == w1.len() && o1.len() == width);
    assert!(w0.is_empty() || at + (w0.len() - 1) * stride + width <= rows.len());
    let mut c = 0;
    while c + 16 <= width {
        let (mut a0, mut a1) = ([0f32; 16], [0f32; 16]);
        for (j, (&x0, &x1)) in w0.iter().zip(w1).enumerate() {
            let start = at + j * stride + c;
            let y: &[f32; 16] = rows[start..start + 16].try_into().unwrap();
            for i in 0..16 {
                a0[i] += x0 * y[i];
                a1[i] += x1 * y[i];
            }
        }
        o0[c..c + 16].copy_from_slice(&a0);
        o1[c..c + 16].copy_from_slice(&a1);
        c += 16;
    }
    if c < width {
        weighted_rows(w0, rows, stride, at + c, &mut o0[c..]);
        weighted_rows(w1, rows, stride, at + c, &mut o1[c..]);
    }
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
/// A row's score is `Σ_b n_b · (s_b · q_b)` in f32, block after block from zero, where `n_b` is
/// block `b`'s exact integer product and `s_b`, `q_b` the row's and the query's scales: the
/// portable and the SIMD kernels make exactly these f32 steps, so they give the same bits.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryQ8 {
    /// One scale per block: the block's largest magnitude over 127 (0 for an all-zero block).
    pub scales: Vec<f32>,
    /// `round(x / scale)`, in −127..=127.
    pub qs: Vec<i8>,
    /// Per block, 8 × the sum of its values: Q4_0 stores `value + 8`, and subtracting this once
    /// per block costs less than subtracting 8 from every nibble.
    pub offsets: Vec<i32>,
    /// The values widened to i16, each block's 32 reordered as the SIMD kernels read a stored
    /// block (even positions 0..16, odd 0..16, even 16..32, odd 16..32; [`wide_order`]).
    pub wide: Vec<i16>,
}

/// The position, within a block, of the `i`-th value of [`QueryQ8::wide`]'s block.
///
/// A stored block read as eight i16 lanes puts positions 2l and 2l + 1 of a Q8_0 block's half in
/// lane l's low and high byte, and a Q4_0 block's byte 2l (positions 2l and 2l + 16) and byte 2l + 1
/// (2l + 1 and 2l + 17) in lane l; shifting and masking the lanes yields the values in this order.
#[inline(always)]
pub const fn wide_order(i: usize) -> usize {
    let (group, l) = (i / 8, i % 8);
    let half = (group / 2) * 16;
    half + 2 * l + group % 2
}

impl QueryQ8 {
    /// Quantizes `u`, whose length is a multiple of [`BLOCK`] (the tables' widths are).
    pub fn new(u: &[f32]) -> Self {
        debug_assert_eq!(u.len() % BLOCK, 0);
        let mut scales = Vec::with_capacity(u.len() / BLOCK);
        let mut qs = Vec::with_capacity(u.len());
        let mut offsets = Vec::with_capacity(u.len() / BLOCK);
        for block in u.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            scales.push(d);
            let start = qs.len();
            qs.extend(
                block
                    .iter()
                    .map(|x| (x * id).round().clamp(-127.0, 127.0) as i8),
            );
            offsets.push(8 * qs[start..].iter().map(|&q| q as i32).sum::<i32>());
        }
        let wide = qs
            .chunks_exact(BLOCK)
            .flat_map(|b| (0..BLOCK).map(move |i| b[wide_order(i)] as i16))
            .collect();
        QueryQ8 {
            scales,
            qs,
            offsets,
            wide,
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
    let mut acc = 0f32;
    for ((ub, qb), (s, us)) in
        q.qs.chunks_exact(BLOCK)
            .zip(qs.chunks_exact(BLOCK))
            .zip(scales.iter().zip(&q.scales))
    {
        let n: i32 = ub.iter().zip(qb).map(|(&x, &y)| x as i32 * y as i32).sum();
        acc += n as f32 * (s * us);
    }
    acc
}

/// `q · row` for a Q4_0 row: each block packs 32 four-bit values offset by 8, the low nibbles
/// holding values 0..16 and the high nibbles 16..32 (GGML's layout).
#[inline(always)]
pub fn dot_q4(q: &QueryQ8, scales: &[f32], qs: &[u8]) -> f32 {
    let mut acc = 0f32;
    for (((ub, qb), (s, us)), off) in
        q.qs.chunks_exact(BLOCK)
            .zip(qs.chunks_exact(BLOCK / 2))
            .zip(scales.iter().zip(&q.scales))
            .zip(&q.offsets)
    {
        let (lo, hi) = ub.split_at(BLOCK / 2);
        let n: i32 = qb
            .iter()
            .zip(lo.iter().zip(hi))
            .map(|(&b, (&xl, &xh))| (b & 0x0f) as i32 * xl as i32 + (b >> 4) as i32 * xh as i32)
            .sum();
        acc += (n - off) as f32 * (s * us);
    }
    acc
}

/// wasm `simd128` scorers over many rows, four rows at a time. A stored block is read as eight
/// i16 lanes and split by shifts and masks into the values of [`QueryQ8::wide`]'s order; one
/// `i32x4.dot_i16x8_s` (x86's `pmaddwd`) then multiplies and pairs sixteen of them, where widening
/// int8 products (`i16x8.extmul`) cost V8 three to five instructions each. The four rows' lane sums
/// are transposed into one vector, so each block's scales and f32 step serve four rows at once.
/// The integer block products are exact and the f32 steps are the portable kernels', so both give
/// the same bits (the browser parity tests compare them with the native CLI).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd {
    use super::{dot_q4, dot_q8, QueryQ8, BLOCK};
    use core::arch::wasm32::*;

    /// Rows scored together.
    const ROWS: usize = 4;

    /// `[total(a), total(b), total(c), total(d)]` of four vectors of lane sums.
    #[inline(always)]
    fn totals(a: v128, b: v128, c: v128, d: v128) -> v128 {
        let ab = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let cd = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
            i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
        )
    }

    /// A stored block type the scan reads.
    trait Block {
        /// The stored element (`i8` for Q8_0, packed `u8` nibbles for Q4_0).
        type Stored;
        /// Whether the stored values carry GGML's offset of 8 (Q4_0).
        const OFFSET: bool;
        /// Stored elements (one byte each) of one block.
        const BLOCK_LEN: usize;
        /// Lane sums of one stored block at `r` against the query's widened block `w`.
        ///
        /// # Safety
        /// `r` must point at one readable stored block and `w` at four readable v128.
        unsafe fn lanes(r: *const v128, w: *const v128) -> v128;
        /// One row's score, the portable way (the rows after the last group of four).
        fn single(q: &QueryQ8, scales: &[f32], row: &[Self::Stored]) -> f32;
    }

    struct Q8;
    struct Q4;

    impl Block for Q8 {
        type Stored = i8;
        const OFFSET: bool = false;
        const BLOCK_LEN: usize = BLOCK;
        #[inline(always)]
        unsafe fn lanes(r: *const v128, w: *const v128) -> v128 {
            let (x0, x1) = (v128_load(r), v128_load(r.add(1)));
            // Arithmetic shifts sign-extend: the even positions from the low bytes, the odd
            // ones from the high bytes.
            let even = |x| i16x8_shr(i16x8_shl(x, 8), 8);
            let odd = |x| i16x8_shr(x, 8);
            i32x4_add(
                i32x4_add(
                    i32x4_dot_i16x8(even(x0), v128_load(w)),
                    i32x4_dot_i16x8(odd(x0), v128_load(w.add(1))),
                ),
                i32x4_add(
                    i32x4_dot_i16x8(even(x1), v128_load(w.add(2))),
                    i32x4_dot_i16x8(odd(x1), v128_load(w.add(3))),
                ),
            )
        }
        #[inline(always)]
        fn single(q: &QueryQ8, scales: &[f32], row: &[i8]) -> f32 {
            dot_q8(q, scales, row)
        }
    }

    impl Block for Q4 {
        type Stored = u8;
        const OFFSET: bool = true;
        const BLOCK_LEN: usize = BLOCK / 2;
        // The nibbles are taken as stored (0..16); the offset is subtracted per block.
        #[inline(always)]
        unsafe fn lanes(r: *const v128, w: *const v128) -> v128 {
            let x = v128_load(r);
            let mask = i16x8_splat(0x0f);
            i32x4_add(
                i32x4_add(
                    i32x4_dot_i16x8(v128_and(x, mask), v128_load(w)),
                    i32x4_dot_i16x8(v128_and(u16x8_shr(x, 8), mask), v128_load(w.add(1))),
                ),
                i32x4_add(
                    i32x4_dot_i16x8(v128_and(u16x8_shr(x, 4), mask), v128_load(w.add(2))),
                    i32x4_dot_i16x8(u16x8_shr(x, 12), v128_load(w.add(3))),
                ),
            )
        }
        #[inline(always)]
        fn single(q: &QueryQ8, scales: &[f32], row: &[u8]) -> f32 {
            dot_q4(q, scales, row)
        }
    }

    /// `scores[i] += q · row_i` over rows of `blocks` stored blocks each, four rows at a time.
    #[inline(always)]
    fn scan<B: Block>(
        q: &QueryQ8,
        scales: &[f32],
        qs: &[B::Stored],
        blocks: usize,
        scores: &mut [f32],
    ) {
        let n = scores.len();
        // Both stored types are one byte, so elements and bytes count alike.
        let per_row = blocks * B::BLOCK_LEN;
        assert!(
            core::mem::size_of::<B::Stored>() == 1
                && qs.len() >= n * per_row
                && scales.len() >= n * blocks
                && q.wide.len() >= blocks * BLOCK
                && q.scales.len() >= blocks
                && q.offsets.len() >= blocks
        );
        let base = qs.as_ptr() as *const u8;
        let wide = q.wide.as_ptr() as *const v128;
        let full = n / ROWS * ROWS;
        for g in (0..full).step_by(ROWS) {
            let mut acc = f32x4_splat(0.0);
            for b in 0..blocks {
                // SAFETY: rows g..g + 4 < n and block b < blocks lie within `qs` (asserted
                // above: n rows of `per_row` bytes); the query's widened block b is four v128 within
                // `wide`; every scale index is below n · blocks and blocks; wasm loads need no
                // alignment.
                unsafe {
                    let at =
                        |r: usize| base.add((g + r) * per_row + b * B::BLOCK_LEN) as *const v128;
                    let w = wide.add(4 * b);
                    let mut n_b = totals(
                        B::lanes(at(0), w),
                        B::lanes(at(1), w),
                        B::lanes(at(2), w),
                        B::lanes(at(3), w),
                    );
                    if B::OFFSET {
                        n_b = i32x4_sub(n_b, i32x4_splat(*q.offsets.get_unchecked(b)));
                    }
                    let s = |r: usize| *scales.get_unchecked((g + r) * blocks + b);
                    let d = f32x4_mul(
                        f32x4(s(0), s(1), s(2), s(3)),
                        f32x4_splat(*q.scales.get_unchecked(b)),
                    );
                    acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(n_b), d));
                }
            }
            // SAFETY: g + 4 <= n slots of `scores`.
            unsafe {
                let out = scores.as_mut_ptr().add(g) as *mut v128;
                v128_store(out, f32x4_add(v128_load(out), acc));
            }
        }
        for i in full..n {
            scores[i] += B::single(
                q,
                &scales[i * blocks..(i + 1) * blocks],
                &qs[i * per_row..(i + 1) * per_row],
            );
        }
    }

    /// `scores[i] += q · row_i` for Q8_0 rows of `width`.
    pub fn add_scores_q8(q: &QueryQ8, scales: &[f32], qs: &[i8], width: usize, scores: &mut [f32]) {
        scan::<Q8>(q, scales, qs, width / BLOCK, scores);
    }

    /// `scores[i] += q · row_i` for Q4_0 rows of `width`.
    pub fn add_scores_q4(q: &QueryQ8, scales: &[f32], qs: &[u8], width: usize, scores: &mut [f32]) {
        scan::<Q4>(q, scales, qs, width / BLOCK, scores);
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

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin() * 3.0 - 0.2).collect()
    }

    #[test]
    fn weighted_rows_give_the_bits_of_adding_row_after_row() {
        let (stride, n) = (80, 9);
        let rows = wave(stride * n, 0.013);
        let w = wave(n, 0.9);
        for (width, at) in [(64, 0), (32, 32), (40, 8), (7, 3), (0, 0), (80, 0), (51, 2)] {
            let mut plain = vec![0f32; width];
            for (j, &wj) in w.iter().enumerate() {
                for (o, y) in plain.iter_mut().zip(&rows[at + j * stride..]) {
                    *o += wj * y;
                }
            }
            let mut got = vec![f32::NAN; width];
            weighted_rows(&w, &rows, stride, at, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&plain), "width {width} at {at}");
        }
        for (width, at) in [(64, 0), (40, 8), (7, 3), (32, 48)] {
            let (w1, mut one, mut two) = (wave(n, 0.4), vec![0f32; width], vec![0f32; width]);
            let (mut p0, mut p1) = (vec![f32::NAN; width], vec![f32::NAN; width]);
            weighted_rows(&w, &rows, stride, at, &mut one);
            weighted_rows(&w1, &rows, stride, at, &mut two);
            weighted_rows_pair([&w, &w1], &rows, stride, at, [&mut p0, &mut p1]);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                (bits(&p0), bits(&p1)),
                (bits(&one), bits(&two)),
                "width {width}"
            );
        }
        let mut none = vec![1f32; 16];
        weighted_rows(&[], &rows, stride, 0, &mut none);
        assert_eq!(none, vec![0f32; 16]);
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
        // The offsets are 8 × each block's values, and the widened copy holds every value of
        // its block once.
        for (b, block) in q.qs.chunks(BLOCK).enumerate() {
            assert_eq!(
                q.offsets[b],
                8 * block.iter().map(|&v| v as i32).sum::<i32>()
            );
            let mut wide: Vec<i16> = q.wide[b * BLOCK..(b + 1) * BLOCK].to_vec();
            let mut plain: Vec<i16> = block.iter().map(|&v| v as i16).collect();
            for i in 0..BLOCK {
                assert_eq!(wide[i], plain[wide_order(i)]);
            }
            wide.sort_unstable();
            plain.sort_unstable();
            assert_eq!(wide, plain);
        }
    }

    /// The block kernels equal the plain dot of the stored values (the f32 steps differ only
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

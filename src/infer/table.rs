//! An item table kept in its stored type (f32, f16, Q8_0 or Q4_0): rows are dequantized one at a
//! time for the session's items, and the catalogue is scored straight from the stored values.

use crate::bundle::TableType;
use crate::kernels::dot::{QueryQ8, BLOCK};
use crate::kernels::rows;
use crate::{Error, Result};
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// One f32 scale per block and the int8 values, row after row.
    Q8 {
        scales: Vec<f32>,
        qs: Vec<i8>,
    },
    /// One f32 scale per block and 16 bytes of packed nibbles per block.
    Q4 {
        scales: Vec<f32>,
        qs: Vec<u8>,
    },
}

/// A user vector ready for one table's scorer ([`ItemTable::query`]).
pub enum TableQuery<'a> {
    /// f32 and f16 tables score against the vector itself.
    Plain(&'a [f32]),
    /// Q8_0 and Q4_0 tables score against it quantized (`q`).
    Quantized { u: &'a [f32], q: QueryQ8 },
}

pub struct ItemTable {
    rows: Rows,
    n_rows: usize,
    width: usize,
}

fn bad(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::Bundle(format!("item table {name}: {msg}"))
}

impl ItemTable {
    /// Takes over a bundle tensor `[rows, width]`, keeping its stored type.
    pub fn from_qtensor(name: &str, q: &QTensor) -> Result<Self> {
        let (n_rows, width) = q.shape().dims2().map_err(|e| bad(name, e))?;
        let data = q.data()?;
        let blocks = n_rows * width / BLOCK;
        let rows = match q.dtype() {
            GgmlDType::F32 => Rows::F32(
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            GgmlDType::F16 => Rows::F16(
                data.chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            ),
            GgmlDType::Q8_0 => {
                let mut scales = Vec::with_capacity(blocks);
                let mut qs = Vec::with_capacity(blocks * BLOCK);
                for b in data.chunks_exact(2 + BLOCK) {
                    scales.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
                    qs.extend(b[2..].iter().map(|&x| x as i8));
                }
                Rows::Q8 { scales, qs }
            }
            GgmlDType::Q4_0 => {
                let mut scales = Vec::with_capacity(blocks);
                let mut qs = Vec::with_capacity(blocks * BLOCK / 2);
                for b in data.chunks_exact(2 + BLOCK / 2) {
                    scales.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
                    qs.extend_from_slice(&b[2..]);
                }
                Rows::Q4 { scales, qs }
            }
            other => return Err(bad(name, format!("type {other:?} is not a table type"))),
        };
        let stored = match &rows {
            Rows::F32(v) => v.len(),
            Rows::F16(v) => v.len(),
            Rows::Q8 { qs, .. } => qs.len(),
            Rows::Q4 { qs, .. } => qs.len() * 2,
        };
        if stored != n_rows * width {
            return Err(bad(
                name,
                format!("holds {stored} values for shape [{n_rows}, {width}]"),
            ));
        }
        Ok(ItemTable {
            rows,
            n_rows,
            width,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn stored_type(&self) -> TableType {
        match self.rows {
            Rows::F32(_) => TableType::F32,
            Rows::F16(_) => TableType::F16,
            Rows::Q8 { .. } => TableType::Q8,
            Rows::Q4 { .. } => TableType::Q4,
        }
    }

    /// Writes row `i`, dequantized, into `out` (`width` values). `i` must be a valid row.
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let w = self.width;
        let bpr = w / BLOCK;
        match &self.rows {
            Rows::F32(v) => out.copy_from_slice(&v[i * w..(i + 1) * w]),
            Rows::F16(v) => {
                for (o, x) in out.iter_mut().zip(&v[i * w..(i + 1) * w]) {
                    *o = x.to_f32();
                }
            }
            Rows::Q8 { scales, qs } => {
                for (b, (ob, qb)) in out
                    .chunks_exact_mut(BLOCK)
                    .zip(qs[i * w..(i + 1) * w].chunks_exact(BLOCK))
                    .enumerate()
                {
                    let s = scales[i * bpr + b];
                    for (o, &q) in ob.iter_mut().zip(qb) {
                        *o = q as f32 * s;
                    }
                }
            }
            Rows::Q4 { scales, qs } => {
                let half_w = w / 2;
                for (b, (ob, qb)) in out
                    .chunks_exact_mut(BLOCK)
                    .zip(qs[i * half_w..(i + 1) * half_w].chunks_exact(BLOCK / 2))
                    .enumerate()
                {
                    let s = scales[i * bpr + b];
                    for (j, &q) in qb.iter().enumerate() {
                        ob[j] = ((q & 0x0f) as i32 - 8) as f32 * s;
                        ob[j + BLOCK / 2] = ((q >> 4) as i32 - 8) as f32 * s;
                    }
                }
            }
        }
    }

    /// Adds `u · row_i` to `scores[i]` for rows `0..scores.len()`. Quantized tables score against
    /// `u` quantized to Q8_0 ([`QueryQ8`]): integer block products, about twice as fast, for a
    /// rounding of `u` of at most half a step per value.
    pub fn add_scores(&self, u: &[f32], scores: &mut [f32]) {
        self.add_scores_from(&self.query(u), 0, scores);
    }

    /// `u` made ready for this table's scorer, once per user vector however many chunks of rows
    /// it scores.
    pub fn query<'a>(&self, u: &'a [f32]) -> TableQuery<'a> {
        match self.rows {
            Rows::F32(_) | Rows::F16(_) => TableQuery::Plain(u),
            Rows::Q8 { .. } | Rows::Q4 { .. } => TableQuery::Quantized {
                u,
                q: QueryQ8::new(u),
            },
        }
    }

    /// Adds `q · row_{first + i}` to `scores[i]` for `i` in `0..scores.len()`; those rows must
    /// exist. `q` is this table's [`Self::query`].
    pub fn add_scores_from(&self, q: &TableQuery, first: usize, scores: &mut [f32]) {
        let (w, n) = (self.width, scores.len());
        let bpr = w / BLOCK;
        let span = |per_row: usize| first * per_row..(first + n) * per_row;
        match (&self.rows, q) {
            (Rows::F32(v), TableQuery::Plain(u)) => rows::add_scores_f32(u, &v[span(w)], w, scores),
            (Rows::F16(v), TableQuery::Plain(u)) => rows::add_scores_f16(u, &v[span(w)], w, scores),
            (Rows::Q8 { scales, qs }, TableQuery::Quantized { q, .. }) => {
                rows::add_scores_q8(q, &scales[span(bpr)], &qs[span(w)], w, scores)
            }
            (Rows::Q4 { scales, qs }, TableQuery::Quantized { q, .. }) => {
                rows::add_scores_q4(q, &scales[span(bpr)], &qs[span(w / 2)], w, scores)
            }
            // Another table's query: this table's own from the same vector.
            (_, TableQuery::Plain(u) | TableQuery::Quantized { u, .. }) => {
                self.add_scores_from(&self.query(u), first, scores)
            }
        }
    }

    /// Inserts rows (`width` values each, row-major) before row `at`, stored in the table's type:
    /// quantized as GGML quantizes (Q8_0: scale max|x|/127; Q4_0: scale max/−8 of the value of
    /// largest magnitude), so a row placed here equals the same row quantized by an export.
    pub fn insert_rows(&mut self, at: usize, rows: &[f32]) {
        let w = self.width;
        let n = rows.len() / w;
        let bpr = w / BLOCK;
        match &mut self.rows {
            Rows::F32(v) => {
                v.splice(at * w..at * w, rows.iter().copied());
            }
            Rows::F16(v) => {
                v.splice(at * w..at * w, rows.iter().map(|&x| f16::from_f32(x)));
            }
            Rows::Q8 { scales, qs } => {
                let mut new_scales = Vec::with_capacity(n * bpr);
                let mut new_qs = Vec::with_capacity(n * w);
                for block in rows.chunks_exact(BLOCK) {
                    let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let d = amax / 127.0;
                    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                    new_scales.push(f16::from_f32(d).to_f32());
                    new_qs.extend(block.iter().map(|x| (x * id).round() as i8));
                }
                scales.splice(at * bpr..at * bpr, new_scales);
                qs.splice(at * w..at * w, new_qs);
            }
            Rows::Q4 { scales, qs } => {
                let mut new_scales = Vec::with_capacity(n * bpr);
                let mut new_qs = Vec::with_capacity(n * w / 2);
                for block in rows.chunks_exact(BLOCK) {
                    let max = block
                        .iter()
                        .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
                    let d = max / -8.0;
                    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                    new_scales.push(f16::from_f32(d).to_f32());
                    let q = |x: f32| ((x * id + 8.5) as i32).clamp(0, 15) as u8;
                    for j in 0..BLOCK / 2 {
                        new_qs.push(q(block[j]) | (q(block[j + BLOCK / 2]) << 4));
                    }
                }
                scales.splice(at * bpr..at * bpr, new_scales);
                qs.splice(at * w / 2..at * w / 2, new_qs);
            }
        }
        self.n_rows += n;
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        match &self.rows {
            Rows::F32(v) => v.len() * 4,
            Rows::F16(v) => v.len() * 2,
            Rows::Q8 { scales, qs } => scales.len() * 4 + qs.len(),
            Rows::Q4 { scales, qs } => scales.len() * 4 + qs.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn rows_and_scores_match_candle_dequantization_for_every_type() {
        let (n, w) = (5usize, 64usize);
        let v: Vec<f32> = (0..n * w)
            .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
            .collect();
        let t = Tensor::from_vec(v, (n, w), &Device::Cpu).unwrap();
        let u: Vec<f32> = (0..w).map(|i| (i as f32 * 0.3).sin()).collect();
        for tt in TableType::ALL {
            let q = QTensor::quantize(&t, tt.ggml()).unwrap();
            let deq: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
            let table = ItemTable::from_qtensor("t", &q).unwrap();
            assert_eq!(table.stored_type(), tt);
            let mut scores = vec![0f32; n];
            table.add_scores(&u, &mut scores);
            let mut row = vec![0f32; w];
            // Quantized tables score against the quantized query: exactly its products, and
            // within the query's rounding (half a step a value) of the f32 query's.
            let uq = QueryQ8::new(&u);
            let (scored_u, bound) = if matches!(tt, TableType::Q8 | TableType::Q4) {
                (
                    uq.dequantized(),
                    0.5 * uq.scales.iter().fold(0f32, |m, &s| m.max(s)),
                )
            } else {
                (u.clone(), 0.0)
            };
            for i in 0..n {
                table.row_into(i, &mut row);
                assert_eq!(row, deq[i], "{tt} row {i}");
                let want: f32 = deq[i].iter().zip(&scored_u).map(|(a, b)| a * b).sum();
                assert!(
                    (scores[i] - want).abs() < 1e-4,
                    "{tt}: {} vs {want}",
                    scores[i]
                );
                let exact: f32 = deq[i].iter().zip(&u).map(|(a, b)| a * b).sum();
                let l1: f32 = deq[i].iter().map(|a| a.abs()).sum();
                assert!(
                    (scores[i] - exact).abs() <= l1 * bound + 1e-4,
                    "{tt} row {i}"
                );
            }
        }
    }

    /// A row inserted into a table equals that row quantized by candle (GGML's quantizers), for
    /// every type, and the rows around it keep their values.
    #[test]
    fn inserted_rows_are_quantized_as_ggml_quantizes_them() {
        let (n, w) = (4usize, 64usize);
        let v: Vec<f32> = (0..n * w)
            .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
            .collect();
        let extra: Vec<f32> = (0..w).map(|i| (i as f32 * 0.37).cos() * 1.5).collect();
        for tt in TableType::ALL {
            let q = QTensor::quantize(
                &Tensor::from_vec(v.clone(), (n, w), &Device::Cpu).unwrap(),
                tt.ggml(),
            )
            .unwrap();
            let mut table = ItemTable::from_qtensor("t", &q).unwrap();
            table.insert_rows(2, &extra);
            assert_eq!(table.n_rows(), n + 1);
            let mut all = v[..2 * w].to_vec();
            all.extend(&extra);
            all.extend(&v[2 * w..]);
            let want = QTensor::quantize(
                &Tensor::from_vec(all, (n + 1, w), &Device::Cpu).unwrap(),
                tt.ggml(),
            )
            .unwrap();
            let want: Vec<Vec<f32>> = want.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
            let mut row = vec![0f32; w];
            for (i, want_row) in want.iter().enumerate() {
                table.row_into(i, &mut row);
                assert_eq!(&row, want_row, "{tt} row {i}");
            }
        }
    }
}

//! The softmax-family recommendation losses — full-catalogue cross-entropy, sampled softmax and
//! gBCE — as one candle op that scores the candidates a block of rows at a time.
//!
//! Written with plain tensor ops, full cross-entropy on MovieLens-1M would build a
//! `[B·L, items]` score matrix (25,600 × 3,504 floats, 360 MB per batch) and several copies of it
//! for the softmax and its backward. Here each thread takes its share of the rows in blocks of
//! [`BLOCK`]: one product gives the block's scores, the softmax (or the elementwise gBCE) turns
//! them into score gradients in the same buffer, and two more products give the rows' and the
//! candidates' gradients. Only one block of scores per thread exists at a time. The loss is the
//! last node of the graph, so the gradients are computed in the forward pass and the backward only
//! scales them by the incoming gradient (1 for a plain `backward()`).

use super::cpu_storage::contiguous_f32;
use crate::kernels::exp::exp_sum_in_place;
use crate::kernels::gemm::{matmul, Dst, Mat};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Rows scored together: a `BLOCK × candidates` buffer stays in cache for the three products.
const BLOCK: usize = 128;

/// What the loss makes of a row's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// `−log softmax` of the positive among itself and the candidates; `negative_shift` is added
    /// to every candidate's score first (the logQ correction of sampled softmax, 0 otherwise).
    Softmax { negative_shift: f32 },
    /// gBCE (Petrov & Macdonald, RecSys 2023): BCE of the positive with its probability raised to
    /// `beta`, and of every candidate as a negative, averaged over the `1 + candidates` terms.
    Gbce { beta: f32 },
}

/// The loss of rows `hidden` (`[N, W]`) against their positives (`[N, W]`, row by row) and shared
/// candidates (`[C, W]`): a scalar, the mean over rows. `candidate_ids[c]` names candidate `c`;
/// a candidate that is a row's own target (`targets[n]`) or the padding id 0 is not a negative of
/// that row. Gradients reach all three inputs.
pub fn candidate_loss(
    hidden: &Tensor,
    positives: &Tensor,
    candidates: &Tensor,
    targets: Vec<u32>,
    candidate_ids: Vec<u32>,
    objective: Objective,
) -> Result<Tensor> {
    let (n, w) = hidden.dims2()?;
    let (c, cw) = candidates.dims2()?;
    if positives.dims() != [n, w] || cw != w || targets.len() != n || candidate_ids.len() != c {
        candle_core::bail!(
            "candidate loss: rows {:?}, positives {:?}, candidates {:?}, {} targets and {} candidate ids do not match",
            hidden.dims(),
            positives.dims(),
            candidates.dims(),
            targets.len(),
            candidate_ids.len()
        );
    }
    let op = CandidateLoss {
        targets,
        candidate_ids,
        objective,
        grads: Mutex::new(None),
    };
    hidden.contiguous()?.apply_op3_arc(
        &positives.contiguous()?,
        &candidates.contiguous()?,
        std::sync::Arc::new(Box::new(op)),
    )
}

struct CandidateLoss {
    targets: Vec<u32>,
    candidate_ids: Vec<u32>,
    objective: Objective,
    /// The forward's gradients of the mean loss: rows, positives, candidates.
    grads: Mutex<Option<Grads>>,
}

struct Grads {
    hidden: Vec<f32>,
    positives: Vec<f32>,
    candidates: Vec<f32>,
}

/// One thread's share: its rows' gradients and its sum of the candidates' gradient and loss.
struct Part {
    loss: f64,
    candidates: Vec<f32>,
}

impl CandidateLoss {
    /// `hidden` and `pos` are the rows `rows` of the inputs; their gradients are written to
    /// `d_hidden` and `d_pos` (of the same rows), the candidates' added to the part.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        rows: std::ops::Range<usize>,
        hidden: &[f32],
        pos: &[f32],
        cand: &[f32],
        w: usize,
        scale: f32,
        d_hidden: &mut [f32],
        d_pos: &mut [f32],
    ) -> Part {
        let c = self.candidate_ids.len();
        let mut part = Part {
            loss: 0.0,
            candidates: vec![0f32; c * w],
        };
        let mut scores = vec![0f32; BLOCK.min(rows.len()) * c];
        let n_rows = rows.len();
        for start in (0..n_rows).step_by(BLOCK) {
            let r = BLOCK.min(n_rows - start);
            let h = &hidden[start * w..(start + r) * w];
            let p = &pos[start * w..(start + r) * w];
            let s = &mut scores[..r * c];
            matmul(
                Dst::new(s, r, c),
                Mat::new(h, r, w),
                Mat::new(cand, c, w).t(),
                false,
                1,
            );
            for i in 0..r {
                let target = self.targets[rows.start + start + i];
                let row = &mut s[i * c..(i + 1) * c];
                let hi = &h[i * w..(i + 1) * w];
                let pi = &p[i * w..(i + 1) * w];
                let positive: f32 = hi.iter().zip(pi).map(|(a, b)| a * b).sum();
                let (loss, d_positive) = match self.objective {
                    Objective::Softmax { negative_shift } => {
                        let mut max = positive;
                        for (v, &id) in row.iter_mut().zip(&self.candidate_ids) {
                            if id == 0 || id == target {
                                *v = f32::NEG_INFINITY;
                            } else {
                                *v += negative_shift;
                                max = max.max(*v);
                            }
                        }
                        let e_pos = (positive - max).exp();
                        let z = exp_sum_in_place(row, max) + e_pos;
                        // Each candidate's share of the softmax is its score gradient.
                        let to_grad = scale / z;
                        row.iter_mut().for_each(|v| *v *= to_grad);
                        ((z.ln() + max - positive) as f64, (e_pos / z - 1.0) * scale)
                    }
                    Objective::Gbce { beta } => {
                        // Terms are averaged over the positive and every candidate, as gSASRec
                        // averages its BCE over `1 + negatives` logits per position.
                        let per_term = scale / (c + 1) as f32;
                        let mut loss = beta as f64 * softplus(-positive) as f64;
                        for (v, &id) in row.iter_mut().zip(&self.candidate_ids) {
                            if id == 0 || id == target {
                                *v = 0.0;
                            } else {
                                loss += softplus(*v) as f64;
                                *v = sigmoid(*v) * per_term;
                            }
                        }
                        (
                            loss / (c + 1) as f64,
                            beta * (sigmoid(positive) - 1.0) * per_term,
                        )
                    }
                };
                part.loss += loss;
                let at = (start + i) * w;
                for j in 0..w {
                    d_hidden[at + j] = d_positive * pi[j];
                    d_pos[at + j] = d_positive * hi[j];
                }
            }
            // Rows: d_hidden += dS · cand; candidates: dC += dSᵀ · h.
            matmul(
                Dst::new(&mut d_hidden[start * w..(start + r) * w], r, w),
                Mat::new(s, r, c),
                Mat::new(cand, c, w),
                true,
                1,
            );
            matmul(
                Dst::new(&mut part.candidates, c, w),
                Mat::new(s, r, c).t(),
                Mat::new(h, r, w),
                true,
                1,
            );
        }
        part
    }
}

fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp3 for CandidateLoss {
    fn name(&self) -> &'static str {
        "candidate-loss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let hidden = contiguous_f32(s1, l1, "candidate loss: rows")?;
        let pos = contiguous_f32(s2, l2, "candidate loss: positives")?;
        let cand = contiguous_f32(s3, l3, "candidate loss: candidates")?;
        let n = self.targets.len();
        let w = l1.dims().get(1).copied().unwrap_or(0);
        let scale = 1.0 / n.max(1) as f32;
        let mut d_hidden = vec![0f32; n * w];
        let mut d_pos = vec![0f32; n * w];
        // Contiguous shares of the rows, one per thread, each summed in a fixed order: the result
        // does not depend on which thread finishes first.
        let threads = candle_core::utils::get_num_threads().max(1);
        let share = n.div_ceil(threads).max(1);
        let parts: Vec<Part> = d_hidden
            .par_chunks_mut(share * w.max(1))
            .zip(d_pos.par_chunks_mut(share * w.max(1)))
            .enumerate()
            .map(|(t, (dh, dp))| {
                let rows = t * share..(t * share + share).min(n);
                let (a, b) = (rows.start * w, rows.end * w);
                self.rows(rows, &hidden[a..b], &pos[a..b], cand, w, scale, dh, dp)
            })
            .collect();
        let mut loss = 0f64;
        let mut d_cand = vec![0f32; cand.len()];
        for p in &parts {
            loss += p.loss;
            for (d, g) in d_cand.iter_mut().zip(&p.candidates) {
                *d += g;
            }
        }
        *self.grads.lock().expect("candidate loss lock") = Some(Grads {
            hidden: d_hidden,
            positives: d_pos,
            candidates: d_cand,
        });
        Ok((
            CpuStorage::F32(vec![(loss / n.max(1) as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        positives: &Tensor,
        candidates: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_scalar::<f32>()?;
        let grads = self.grads.lock().expect("candidate loss lock");
        let Some(grads) = grads.as_ref() else {
            candle_core::bail!("candidate loss: backward before forward");
        };
        let dev = hidden.device();
        let make = |v: &[f32], like: &Tensor| -> Result<Tensor> {
            let v: Vec<f32> = if g == 1.0 {
                v.to_vec()
            } else {
                v.iter().map(|x| x * g).collect()
            };
            Tensor::from_vec(v, like.shape(), dev)
        };
        Ok((
            Some(make(&grads.hidden, hidden)?),
            Some(make(&grads.positives, positives)?),
            Some(make(&grads.candidates, candidates)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn inputs(n: usize, c: usize, w: usize, seed: u64) -> (Var, Var, Var) {
        let dev = Device::Cpu;
        let r = |rows: usize, s: u64| {
            let v: Vec<f32> = (0..rows * w)
                .map(|i| (((i as u64 * 2654435761 + s * 97) % 1000) as f32 / 500.0 - 1.0) * 0.8)
                .collect();
            Var::from_tensor(&Tensor::from_vec(v, (rows, w), &dev).unwrap()).unwrap()
        };
        (r(n, seed), r(n, seed + 1), r(c, seed + 2))
    }

    /// The same losses from plain candle ops, every score materialised.
    fn composed(
        h: &Tensor,
        p: &Tensor,
        cand: &Tensor,
        targets: &[u32],
        ids: &[u32],
        objective: Objective,
    ) -> Tensor {
        let dev = Device::Cpu;
        let (n, c) = (targets.len(), ids.len());
        let pos = (h * p).unwrap().sum_keepdim(1).unwrap();
        let scores = h.matmul(&cand.t().unwrap()).unwrap();
        let hit: Vec<f32> = (0..n * c)
            .map(|i| {
                let id = ids[i % c];
                f32::from(u8::from(id == 0 || id == targets[i / c]))
            })
            .collect();
        let hit = Tensor::from_vec(hit, (n, c), &dev).unwrap();
        let keep = (1.0 - &hit).unwrap();
        match objective {
            Objective::Softmax { negative_shift } => {
                let neg = ((scores + negative_shift as f64).unwrap() * &keep).unwrap();
                let neg = (neg + (hit * -1e9).unwrap()).unwrap();
                let all = Tensor::cat(&[&pos, &neg], 1).unwrap();
                let lse = candle_nn::ops::log_softmax(&all, D::Minus1).unwrap();
                (lse.narrow(1, 0, 1).unwrap().mean_all().unwrap() * -1.0).unwrap()
            }
            Objective::Gbce { beta } => {
                let sp = |x: &Tensor| -> Tensor {
                    (x.relu().unwrap()
                        + (x.abs().unwrap().neg().unwrap().exp().unwrap() + 1.0)
                            .unwrap()
                            .log()
                            .unwrap())
                    .unwrap()
                };
                let pos_term = (sp(&pos.neg().unwrap()) * beta as f64).unwrap();
                let neg_terms = (sp(&scores) * keep).unwrap().sum_keepdim(1).unwrap();
                ((pos_term + neg_terms).unwrap() / (c + 1) as f64)
                    .unwrap()
                    .mean_all()
                    .unwrap()
            }
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::model::testing::max_diff(a, b)
    }

    /// Values and all three gradients equal the composed version's, over more rows than one block
    /// and more than one thread's share, with targets among the candidates and padding.
    #[test]
    fn matches_the_composed_losses() {
        let (n, c, w) = (2 * BLOCK + 37, 41, 8);
        let targets: Vec<u32> = (0..n as u32).map(|i| 1 + i % 40).collect();
        let ids: Vec<u32> = (0..c as u32).collect();
        for objective in [
            Objective::Softmax {
                negative_shift: 0.0,
            },
            Objective::Softmax {
                negative_shift: 1.7,
            },
            Objective::Gbce { beta: 0.3 },
        ] {
            let (h, p, cand) = inputs(n, c, w, 5);
            let ours =
                candidate_loss(&h, &p, &cand, targets.clone(), ids.clone(), objective).unwrap();
            let theirs = composed(&h, &p, &cand, &targets, &ids, objective);
            assert!(max_diff(&ours, &theirs) < 1e-5, "{objective:?}");
            let (ga, gb) = (ours.backward().unwrap(), theirs.backward().unwrap());
            for v in [&h, &p, &cand] {
                let (a, b) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(max_diff(a, b) < 1e-6, "{objective:?} {:?}", v.dims());
            }
        }
    }

    /// Central differences of the loss agree with the op's gradient for a few coordinates of each
    /// input.
    #[test]
    fn gradients_match_finite_differences() {
        let (n, c, w) = (9, 7, 4);
        let targets = vec![1, 2, 3, 4, 5, 6, 1, 2, 3];
        let ids = vec![0, 1, 2, 3, 4, 5, 6];
        for objective in [
            Objective::Softmax {
                negative_shift: 0.5,
            },
            Objective::Gbce { beta: 0.6 },
        ] {
            let (h, p, cand) = inputs(n, c, w, 11);
            let loss = |h: &Tensor, p: &Tensor, cand: &Tensor| -> f64 {
                candidate_loss(h, p, cand, targets.clone(), ids.clone(), objective)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let out =
                candidate_loss(&h, &p, &cand, targets.clone(), ids.clone(), objective).unwrap();
            let grads = out.backward().unwrap();
            for which in 0..3 {
                let var = [&h, &p, &cand][which];
                let g: Vec<f32> = grads
                    .get(var)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let base: Vec<f32> = var.flatten_all().unwrap().to_vec1().unwrap();
                for k in [0, 3, base.len() - 1] {
                    let eps = 1e-2f32;
                    let bumped = |d: f32| {
                        let mut v = base.clone();
                        v[k] += d;
                        Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()
                    };
                    let args = |t: Tensor| -> [Tensor; 3] {
                        let mut a = [
                            h.as_tensor().clone(),
                            p.as_tensor().clone(),
                            cand.as_tensor().clone(),
                        ];
                        a[which] = t;
                        a
                    };
                    let [a1, b1, c1] = args(bumped(eps));
                    let [a2, b2, c2] = args(bumped(-eps));
                    let fd = (loss(&a1, &b1, &c1) - loss(&a2, &b2, &c2)) / (2.0 * eps as f64);
                    assert!(
                        (fd - g[k] as f64).abs() < 2e-4,
                        "{objective:?} input {which} [{k}]: {fd} vs {}",
                        g[k]
                    );
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let (h, p, cand) = inputs(3, 4, 2, 1);
        let e = candidate_loss(
            &h,
            &p,
            &cand,
            vec![1, 2],
            vec![0, 1, 2, 3],
            Objective::Gbce { beta: 1.0 },
        )
        .unwrap_err();
        assert!(e.to_string().contains("do not match"), "{e}");
    }
}

//! The composed reference of the fused attention's weights, for the tests: scaled scores, hidden
//! keys, softmax and dropout as one candle op with its own backward, materialising every
//! `[N, H, Lq, L]` weight. The fused op ([`super::attend`]) computes the same weights block by block
//! and is tested against it, element for element and gradient for gradient.

use super::Weights;
use crate::model::batch::KeyMask;
use crate::model::ops::cpu_storage::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rand::rngs::SmallRng;

/// `[N, H, Lq, L]` dims of a contiguous f32 tensor.
fn dims(layout: &Layout, mask: Option<&KeyMask>) -> Result<(usize, usize, usize, usize)> {
    let &[n, h, lq, l] = layout.shape().dims() else {
        candle_core::bail!(
            "attention scores must be [N, H, Lq, L], got {:?}",
            layout.shape()
        );
    };
    if lq > l || lq == 0 {
        candle_core::bail!("attention scores: {lq} queries over {l} keys");
    }
    if let Some(m) = mask {
        m.check(n, l)?;
    }
    Ok((n, h, lq, l))
}

impl Weights {
    /// The visible keys of every row of `[N, H, Lq, L]`, in storage order.
    fn rows(&self, (n, h, lq, l): (usize, usize, usize, usize)) -> Vec<Option<(usize, usize)>> {
        let mut out = Vec::with_capacity(n * h * lq);
        for b in 0..n {
            for _ in 0..h {
                for qi in 0..lq {
                    out.push(self.range(b, qi, lq, l));
                }
            }
        }
        out
    }
}

impl CustomOp1 for Weights {
    fn name(&self) -> &'static str {
        "attention-weights"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = dims(layout, self.mask.as_ref())?;
        let l = d.3;
        let s = contiguous_f32(storage, layout, "attention scores")?;
        let ranges = self.rows(d);
        let mut out = vec![0f32; s.len()];
        for (r, ((o, row), range)) in out
            .chunks_exact_mut(l)
            .zip(s.chunks_exact(l))
            .zip(ranges)
            .enumerate()
        {
            self.probabilities(row, range, o);
            if self.dropout.is_some() {
                for (k, x) in o.iter_mut().enumerate() {
                    *x *= self.keep(r * l + k, k);
                }
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &WeightsGrad(self.clone()))?;
        Ok(Some(grad))
    }
}

/// The gradient of [`Weights`] with respect to the raw scores, from the scores and the gradient of
/// the weights: `scale · P ⊙ (dP − Σ P dP)` with `dP` the incoming gradient through the dropout
/// mask; zero for hidden keys.
struct WeightsGrad(Weights);

impl CustomOp2 for WeightsGrad {
    fn name(&self) -> &'static str {
        "attention-weights-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = &self.0;
        let d = dims(l1, w.mask.as_ref())?;
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "attention gradient shape {:?} != {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let l = d.3;
        let (s, g) = (
            contiguous_f32(s1, l1, "attention scores")?,
            contiguous_f32(s2, l2, "attention gradient")?,
        );
        let ranges = w.rows(d);
        let mut out = vec![0f32; s.len()];
        let mut p = vec![0f32; l];
        for (r, (((o, row), grow), range)) in out
            .chunks_exact_mut(l)
            .zip(s.chunks_exact(l))
            .zip(g.chunks_exact(l))
            .zip(ranges)
            .enumerate()
        {
            // A row that sees no key is uniform; its gradient is the softmax's, as the composed
            // version's autograd gives it (those rows are zeroed downstream in the models).
            let (lo, hi) = range.unwrap_or((0, l - 1));
            w.probabilities(row, range, &mut p);
            // dP in place in `o`, then the softmax backward.
            let mut dot = 0f32;
            for k in lo..=hi {
                o[k] = grow[k] * w.keep(r * l + k, k);
                dot += p[k] * o[k];
            }
            for k in lo..=hi {
                o[k] = w.scale * p[k] * (o[k] - dot);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Attention weights from raw scores `q·kᵀ` `[N, H, Lq, L]`: `softmax(scale · scores)` over the keys
/// `mask` leaves visible (all keys without a mask), then dropout `p` when `rng` is given (training).
pub fn attention_weights(
    scores: &Tensor,
    scale: f64,
    mask: Option<&KeyMask>,
    p: f32,
    rng: Option<&mut SmallRng>,
) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op1(Weights::new(scale, mask, p, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::MASKED;
    use crate::model::testing::max_diff;
    use candle_core::{Device, Var, D};
    use rand::SeedableRng;

    /// The composed reference: scores·scale + (-1e9 on hidden keys), softmax; `lead` copies of
    /// key 0 are ln(lead) added to its score.
    fn composed(scores: &Tensor, scale: f64, mask: Option<&KeyMask>) -> Tensor {
        let (n, _, lq, l) = scores.dims4().unwrap();
        let mut bias = vec![0f32; n * lq * l];
        if let Some(m) = mask {
            for b in 0..n {
                for qi in 0..lq {
                    bias[(b * lq + qi) * l] += (m.lead as f32).ln();
                    for k in 0..l {
                        let visible = m
                            .range(b, qi, lq, l)
                            .is_some_and(|(lo, hi)| k >= lo && k <= hi);
                        if !visible {
                            bias[(b * lq + qi) * l + k] = MASKED;
                        }
                    }
                }
            }
        }
        let bias = Tensor::from_vec(bias, (n, 1, lq, l), &Device::Cpu).unwrap();
        candle_nn::ops::softmax(
            &(scores * scale).unwrap().broadcast_add(&bias).unwrap(),
            D::Minus1,
        )
        .unwrap()
    }

    fn masks() -> Vec<Option<KeyMask>> {
        let pads = vec![0, 2, 5];
        vec![
            None,
            Some(KeyMask::new(pads.clone(), false)),
            Some(KeyMask::new(pads, true)),
            Some(KeyMask::lead(3, 4)),
        ]
    }

    #[test]
    fn matches_the_composed_softmax_and_its_gradient() {
        let dev = Device::Cpu;
        for lq in [5, 1] {
            for mask in masks() {
                let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (3, 2, lq, 5), &dev).unwrap())
                    .unwrap();
                // A weighting of the outputs makes the gradient depend on every weight.
                let w = Tensor::randn(0f32, 1.0, (3, 2, lq, 5), &dev).unwrap();
                let fused =
                    attention_weights(x.as_tensor(), 0.7, mask.as_ref(), 0.5, None).unwrap();
                let reference = composed(x.as_tensor(), 0.7, mask.as_ref());
                assert!(max_diff(&fused, &reference) < 1e-6, "{mask:?} lq={lq}");
                let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let g2 = (reference * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let (g1, g2) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
                assert!(max_diff(g1, g2) < 1e-5, "{mask:?} lq={lq}: {g1} vs {g2}");
            }
        }
    }

    #[test]
    fn dropout_zeroes_about_p_scales_the_rest_and_backward_uses_the_same_mask() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(
            &Tensor::zeros((4, 1, 64, 64), candle_core::DType::F32, &dev).unwrap(),
        )
        .unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let y = attention_weights(x.as_tensor(), 1.0, None, 0.5, Some(&mut rng)).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let zeros = v.iter().filter(|&&a| a == 0.0).count() as f32 / v.len() as f32;
        assert!((zeros - 0.5).abs() < 0.02, "{zeros}");
        // Uniform rows: each kept weight is (1/64)·2.
        assert!(v.iter().all(|&a| a == 0.0 || (a - 2.0 / 64.0).abs() < 1e-7));
        // d(sum of the kept weights of key 0)/d(score): nonzero only where the mask kept key 0.
        let pick = Tensor::from_vec(
            (0..v.len())
                .map(|i| if i % 64 == 0 { 1f32 } else { 0.0 })
                .collect::<Vec<_>>(),
            (4, 1, 64, 64),
            &dev,
        )
        .unwrap();
        let g = (y * pick).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for row in 0..v.len() / 64 {
            let kept = v[row * 64] != 0.0;
            assert_eq!(g[row * 64] != 0.0, kept, "row {row}");
        }
    }

    #[test]
    fn refuses_a_mask_of_the_wrong_batch() {
        let x = Tensor::zeros((2, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mask = KeyMask::new(vec![0], true);
        assert!(attention_weights(&x, 1.0, Some(&mask), 0.0, None).is_err());
        assert_eq!(mask.repeat(2).pads.as_slice(), &[0, 0]);
        // Key 0 may stand for several keys only where no key is hidden.
        let lead_and_pads = KeyMask {
            lead: 3,
            ..KeyMask::new(vec![1, 0], false)
        };
        let err = attention_weights(&x, 1.0, Some(&lead_and_pads), 0.0, None).unwrap_err();
        assert!(err.to_string().contains("stands for 3 keys"), "{err}");
        assert_eq!(KeyMask::lead(1, 5).repeat(2).lead, 5);
    }
}

//! Dropout driven by the trainer's seeded generator, so runs reproduce (candle's CPU generator cannot
//! be seeded). The mask is a hash of one drawn seed and each element's index: one candle op, no
//! mask tensor, and the backward regenerates the forward's mask.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rand::rngs::SmallRng;
use rand::Rng;

/// A uniform draw in `[0, 1)` for element `index` of the mask drawn with `seed` (splitmix64).
pub(crate) fn uniform(seed: u64, index: u64) -> f32 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// The multiplier of element `index`: 0 with probability `p`, else 1/(1-p).
pub(crate) fn keep(p: f32, seed: u64, index: usize) -> f32 {
    if uniform(seed, index as u64) < p {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

/// The mean multiplier of `m` identical elements that stand in for one (element `index`'s `m`
/// copies): each kept with probability 1-p as [`keep`] keeps it, so the result is a
/// Binomial(m, 1-p) count over m(1-p), as dropping the copies one by one would give. The copies
/// draw from a second stream so they never repeat another element's draw.
pub(crate) fn keep_of_many(p: f32, seed: u64, index: usize, m: usize) -> f32 {
    if m == 1 {
        return keep(p, seed, index);
    }
    let seed = seed.rotate_left(32) ^ 0xD6E8_FEB8_6659_FD93;
    let kept = (0..m as u64)
        .filter(|&j| uniform(seed, index as u64 * m as u64 + j) >= p)
        .count();
    kept as f32 / (m as f32 * (1.0 - p))
}

#[derive(Clone, Copy)]
struct Dropout {
    p: f32,
    seed: u64,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::cpu_storage::contiguous_f32(storage, layout, "dropout: input")?;
        let out = x
            .iter()
            .enumerate()
            .map(|(i, v)| v * keep(self.p, self.seed, i))
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // The op is linear: its gradient is the same mask applied to the incoming gradient.
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// Zeroes each element with probability `p` and scales the rest by 1/(1-p); the identity when `rng`
/// is `None` (evaluation) or `p` is 0.
pub fn dropout(xs: &Tensor, p: f32, rng: Option<&mut SmallRng>) -> Result<Tensor> {
    match rng {
        Some(r) if p > 0.0 => xs.contiguous()?.apply_op1(Dropout {
            p,
            seed: r.random(),
        }),
        _ => Ok(xs.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    #[test]
    fn keeps_expectation_and_is_identity_without_rng() {
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let y = dropout(&x, 0.5, Some(&mut rng)).unwrap();
        let mean = y.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        let z = dropout(&x, 0.5, None).unwrap();
        assert_eq!(z.sum_all().unwrap().to_scalar::<f32>().unwrap(), 10_000.0);
    }

    #[test]
    fn many_copies_keep_a_binomial_share() {
        // m copies with p = 0.5: mean 1, variance p / (m (1 - p)) = 1/m; one copy is `keep`.
        let (p, m, n) = (0.5f32, 16usize, 20_000usize);
        let draws: Vec<f32> = (0..n).map(|i| keep_of_many(p, 9, i, m)).collect();
        let mean = draws.iter().sum::<f32>() / n as f32;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f32>() / n as f32;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert!((var - 1.0 / m as f32).abs() < 0.006, "{var}");
        // Every draw is a whole number of kept copies.
        assert!(draws
            .iter()
            .all(|d| (d * m as f32 * (1.0 - p)).fract() == 0.0));
        assert_eq!(keep_of_many(p, 9, 7, 1), keep(p, 9, 7));
    }

    #[test]
    fn gradient_uses_the_forward_mask_and_draws_differ_between_calls() {
        let x =
            Var::from_tensor(&Tensor::ones(4096, candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap();
        let mut rng = SmallRng::seed_from_u64(2);
        let y = dropout(x.as_tensor(), 0.3, Some(&mut rng)).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let (y, g): (Vec<f32>, Vec<f32>) = (
            y.to_vec1().unwrap(),
            g.get(x.as_tensor()).unwrap().to_vec1().unwrap(),
        );
        // With x = 1, y is the mask itself; so is the gradient of sum(y).
        assert_eq!(y, g);
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f32 / y.len() as f32;
        assert!((zeros - 0.3).abs() < 0.03, "{zeros}");
        let y2: Vec<f32> = dropout(x.as_tensor(), 0.3, Some(&mut rng))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_ne!(y, y2, "a second call draws a new mask");
    }
}

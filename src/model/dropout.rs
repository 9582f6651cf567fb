//! Dropout driven by the trainer's seeded generator, so runs reproduce (candle's CPU generator cannot
//! be seeded).

use candle_core::{Result, Tensor};
use rand::rngs::SmallRng;
use rand::Rng;

/// Zeroes each element with probability `p` and scales the rest by 1/(1-p); the identity when `rng`
/// is `None` (evaluation) or `p` is 0.
pub fn dropout(xs: &Tensor, p: f32, rng: Option<&mut SmallRng>) -> Result<Tensor> {
    let rng = match rng {
        Some(r) if p > 0.0 => r,
        _ => return Ok(xs.clone()),
    };
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..xs.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
        .collect();
    xs * Tensor::from_vec(mask, xs.shape(), xs.device())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
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
}

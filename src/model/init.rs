//! Seeded initialisation that mirrors the reference's `_init_weights`: Xavier-normal for every matrix,
//! zeros for biases, ones for LayerNorm scales.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Re-initialises every variable of `vars` from `seed`, visiting names in sorted order so the result
/// does not depend on hash-map order.
pub fn seeded_init(vars: &VarMap, seed: u64) -> Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let data = vars.data().lock().expect("var map lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let value = if dims.len() >= 2 {
            // torch's xavier_normal_ on a 2-D [fan_out, fan_in] weight.
            let (fan_out, fan_in) = (dims[0], dims[1..].iter().product::<usize>());
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            let normal = Normal::new(0.0f32, std).expect("positive std");
            let n = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
            Tensor::from_vec(v, dims, var.device())?
        } else if name.ends_with("bias") {
            var.zeros_like()?
        } else {
            var.ones_like()?
        };
        var.set(&value)?;
    }
    Ok(())
}

/// Freshly initialised weights for `cfg` as named tensors: what an untrained model exports. Used for
/// synthetic bundles (fuzzing seeds, property tests, catalogue-size studies).
pub fn random_weights(
    cfg: &super::ModelConfig,
    seed: u64,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let vars = VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(
        &vars,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    super::SeqRec::new(cfg, vb)?;
    seeded_init(&vars, seed)?;
    snapshot(&vars)
}

/// A copy of every variable's current value, by name (checkpoints, best-epoch weights).
pub fn snapshot(vars: &VarMap) -> Result<std::collections::HashMap<String, Tensor>> {
    let data = vars.data().lock().expect("var map lock poisoned");
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

//! Adam (Kingma & Ba) with its moments exposed, so a run can be checkpointed and resumed exactly.
//! With weight decay 0 it is the update torch's `Adam` applies in the reference code.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::HashMap;

pub struct Adam {
    /// Variables in a fixed (sorted-name) order, with their first and second moments.
    params: Vec<(String, Var, Tensor, Tensor)>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: u64,
}

impl Adam {
    pub fn new(vars: &HashMap<String, Var>, lr: f64) -> Result<Self> {
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let params = names
            .into_iter()
            .map(|n| {
                let v = vars[n].clone();
                let z = v.as_tensor().zeros_like()?;
                Ok((n.clone(), v, z.clone(), z))
            })
            .collect::<Result<_>>()?;
        Ok(Adam {
            params,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
        })
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One update from the gradients of `loss`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads: GradStore = loss.backward()?;
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        for (_, var, m, v) in self.params.iter_mut() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            *m = ((&*m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            *v = ((&*v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            var.set(&(var.as_tensor() - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// Moments as `adam.m.<name>` / `adam.v.<name>` tensors.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::with_capacity(self.params.len() * 2);
        for (n, _, m, v) in &self.params {
            out.insert(format!("adam.m.{n}"), m.clone());
            out.insert(format!("adam.v.{n}"), v.clone());
        }
        out
    }

    /// Restores moments written by [`Adam::state`] and the step count.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (n, _, m, v) in self.params.iter_mut() {
            let get = |k: String| {
                state
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("resume state lacks {k}")))
            };
            let (nm, nv) = (get(format!("adam.m.{n}"))?, get(format!("adam.v.{n}"))?);
            if nm.dims() != m.dims() || nv.dims() != v.dims() {
                candle_core::bail!(
                    "resume state for {n} has shape {:?}, model {:?}",
                    nm.dims(),
                    m.dims()
                );
            }
            *m = nm;
            *v = nv;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // With bias correction, Adam's first step is lr · g/|g| (up to eps).
        let w = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let vars = HashMap::from([("w".to_string(), w.clone())]);
        let mut opt = Adam::new(&vars, 0.1).unwrap();
        let loss = (w.as_tensor() * Tensor::new(&[3.0f32, -0.5], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
        let got: Vec<f32> = w
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6,
            "{got:?}"
        );
        assert_eq!(opt.step_count(), 1);
    }
}

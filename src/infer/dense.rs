//! Encoder layers as plain f32 buffers: a linear map (torch layout, `[out, in]`), LayerNorm and
//! the row-wise helpers the encoder needs. Weights come out of the bundle once, at load.

use crate::kernels::rows;
use crate::{Error, Result};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::collections::HashMap;

/// The bundle's encoder tensors, dequantized on request and checked for shape.
pub struct Weights<'a>(pub &'a HashMap<String, QTensor>);

impl Weights<'_> {
    pub fn get(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
        let q = self
            .0
            .get(name)
            .ok_or_else(|| Error::Bundle(format!("missing tensor {name}")))?;
        if q.shape().dims() != dims {
            return Err(Error::Bundle(format!(
                "tensor {name} has shape {:?}, the model config needs {dims:?}",
                q.shape().dims()
            )));
        }
        Ok(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?)
    }
}

pub struct Dense {
    /// `[in, out]`, row-major — torch's weight transposed once at load, so the product over a row
    /// is a weighted sum of contiguous weight rows ([`rows::linear`]).
    wt: Vec<f32>,
    b: Option<Vec<f32>>,
    n_in: usize,
    n_out: usize,
}

impl Dense {
    pub fn load(ws: &Weights, prefix: &str, n_in: usize, n_out: usize, bias: bool) -> Result<Self> {
        let w = ws.get(&format!("{prefix}.weight"), &[n_out, n_in])?;
        let b = if bias {
            Some(ws.get(&format!("{prefix}.bias"), &[n_out])?)
        } else {
            None
        };
        Ok(Dense::from_parts(w, b, n_in, n_out))
    }

    /// `w` in torch's `[out, in]` layout.
    pub fn from_parts(w: Vec<f32>, b: Option<Vec<f32>>, n_in: usize, n_out: usize) -> Self {
        let mut wt = vec![0f32; w.len()];
        for (o, row) in w.chunks_exact(n_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                wt[i * n_out + o] = v;
            }
        }
        Dense { wt, b, n_in, n_out }
    }

    /// `x` holds rows of `n_in`; `out` is resized to the same rows of `n_out`.
    pub fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let rows = x.len() / self.n_in;
        out.clear();
        out.resize(rows * self.n_out, 0.0);
        rows::linear(x, &self.wt, self.b.as_deref(), self.n_in, out);
    }

    /// The output for a single input row.
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        rows::linear(&x[..self.n_in], &self.wt, self.b.as_deref(), self.n_in, out);
    }

    pub fn bias_or_zero(&self, o: usize) -> f32 {
        self.b.as_ref().map_or(0.0, |b| b[o])
    }
}

pub struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub fn load(ws: &Weights, prefix: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            w: ws.get(&format!("{prefix}.weight"), &[d])?,
            b: ws.get(&format!("{prefix}.bias"), &[d])?,
            eps: eps as f32,
        })
    }

    /// Normalises each row of `x` (rows of `w.len()`) into `out`.
    pub fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(x.len(), 0.0);
        rows::layer_norm(x, &self.w, &self.b, self.eps, out);
    }
}

/// In-place softmax of a row of scores.
#[inline]
pub fn softmax(xs: &mut [f32]) {
    // Eight running maxima, so the scan vectorizes (the maximum is the same in any order).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let max = lanes.into_iter().fold(rest, f32::max);
    let inv = 1.0 / crate::kernels::exp::exp_sum_in_place(xs, max);
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

//! The maps a bundle keeps to place items that were not in training, fitted at export: text vector
//! → semantic row (the LLM-ESR adapter, folded into one affine map) and text vector → ID row (the
//! PCA projection LLM-ESR initialises ID rows with, or a ridge regression onto the trained rows).

use crate::bundle::NewItemId;
use crate::data::ColdItems;
use crate::model::names::{ADAPTER, ID_MAP, SEMANTIC_MAP};
use crate::semantic::pca::Projection;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use nalgebra::DMatrix;
use std::collections::HashMap;

/// Ridge penalties tried; the one with the lowest error on a tenth of the trained items, fitted
/// on the rest, is refitted on all of them.
const RIDGE_LAMBDAS: [f64; 6] = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];

/// `x` `[n, dim]` row-major; the affine map `W [k, dim]`, `b [k]` as bundle tensors.
fn map_tensors(name: &str, w: Vec<f32>, b: Vec<f32>, dim: usize) -> Result<Vec<(String, Tensor)>> {
    let k = b.len();
    Ok(vec![
        (
            format!("{name}.weight"),
            Tensor::from_vec(w, (k, dim), &Device::Cpu)?,
        ),
        (
            format!("{name}.bias"),
            Tensor::from_vec(b, k, &Device::Cpu)?,
        ),
    ])
}

/// The adapter's two linear layers as one: `W₁(W₀x + b₀) + b₁ = (W₁W₀)x + (W₁b₀ + b₁)`.
pub fn semantic_map(weights: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
    let get = |n: String| {
        weights
            .get(&n)
            .cloned()
            .ok_or_else(|| Error::Training(format!("checkpoint lacks {n}")))
    };
    let [first, second] = ADAPTER;
    let (w0, b0) = (
        get(format!("{first}.weight"))?,
        get(format!("{first}.bias"))?,
    );
    let (w1, b1) = (
        get(format!("{second}.weight"))?,
        get(format!("{second}.bias"))?,
    );
    let w = w1.matmul(&w0)?;
    let b = (w1.matmul(&b0.unsqueeze(1)?)?.squeeze(1)? + b1)?;
    let dim = w.dim(1)?;
    map_tensors(SEMANTIC_MAP, w.flatten_all()?.to_vec1()?, b.to_vec1()?, dim)
}

/// The PCA map `C·(x − μ)` that LLM-ESR's ID rows start from (fitted on every item's vector).
pub fn pca_map(vectors: &[f32], dim: usize, hidden: usize) -> Result<Vec<(String, Tensor)>> {
    let n = vectors.len() / dim;
    let p = Projection::fit(vectors, n, dim, hidden)?;
    let b: Vec<f32> = (0..hidden)
        .map(|j| {
            -(0..dim)
                .map(|c| p.components[j * dim + c] * p.mean[c])
                .sum::<f32>()
        })
        .collect();
    map_tensors(ID_MAP, p.components, b, dim)
}

/// Least squares with penalty `lambda` on the weights (not the intercept): `[dim + 1, k]`.
fn ridge(x: &DMatrix<f64>, y: &DMatrix<f64>, lambda: f64) -> Option<DMatrix<f64>> {
    let ones = DMatrix::from_element(x.nrows(), 1, 1.0);
    let xa = DMatrix::from_columns(
        &x.column_iter()
            .chain(ones.column_iter())
            .collect::<Vec<_>>(),
    );
    let mut gram = xa.tr_mul(&xa);
    for i in 0..x.ncols() {
        gram[(i, i)] += lambda;
    }
    gram.cholesky().map(|c| c.solve(&xa.tr_mul(y)))
}

/// A ridge map from text vectors onto the trained ID rows of every item not held out.
pub fn ridge_map(
    vectors: &[f32],
    dim: usize,
    id_rows: &[Vec<f32>],
    held_out: Option<&ColdItems>,
) -> Result<Vec<(String, Tensor)>> {
    let hidden = id_rows.first().map_or(0, Vec::len);
    let trained: Vec<usize> = (0..vectors.len() / dim)
        .filter(|&i| !held_out.is_some_and(|c| c.contains(i as u32 + 1)))
        .collect();
    if trained.len() < 10 {
        return Err(Error::Training(
            "a ridge map needs at least 10 trained items".into(),
        ));
    }
    let x = |rows: &[usize]| {
        DMatrix::from_fn(rows.len(), dim, |r, c| vectors[rows[r] * dim + c] as f64)
    };
    let y = |rows: &[usize]| {
        DMatrix::from_fn(rows.len(), hidden, |r, c| id_rows[rows[r] + 1][c] as f64)
    };
    // Every tenth trained item checks each penalty; a deterministic split.
    let (check, fit): (Vec<usize>, Vec<usize>) = trained.iter().partition(|&&i| i % 10 == 0);
    let ones = |n: usize| DMatrix::from_element(n, 1, 1.0);
    let mut best = (f64::INFINITY, RIDGE_LAMBDAS[0]);
    for lambda in RIDGE_LAMBDAS {
        let Some(w) = ridge(&x(&fit), &y(&fit), lambda) else {
            continue;
        };
        let xc = x(&check);
        let xa = DMatrix::from_columns(
            &xc.column_iter()
                .chain(ones(check.len()).column_iter())
                .collect::<Vec<_>>(),
        );
        let err = (xa * w - y(&check)).norm_squared();
        if err < best.0 {
            best = (err, lambda);
        }
    }
    let w = ridge(&x(&trained), &y(&trained), best.1)
        .ok_or_else(|| Error::Training("the ridge system is singular".into()))?;
    // w is [dim + 1, hidden]: rows are inputs (the last the intercept), columns outputs.
    let weight: Vec<f32> = (0..hidden)
        .flat_map(|j| (0..dim).map(move |c| (c, j)))
        .map(|(c, j)| w[(c, j)] as f32)
        .collect();
    let bias: Vec<f32> = (0..hidden).map(|j| w[(dim, j)] as f32).collect();
    map_tensors(ID_MAP, weight, bias, dim)
}

/// The ID map `kind` asks for (`None` for zero rows).
pub fn id_map(
    kind: NewItemId,
    vectors: &[f32],
    dim: usize,
    id_rows: &[Vec<f32>],
    held_out: Option<&ColdItems>,
) -> Result<Option<Vec<(String, Tensor)>>> {
    let hidden = id_rows.first().map_or(0, Vec::len);
    match kind {
        NewItemId::Zero => Ok(None),
        NewItemId::Pca => pca_map(vectors, dim, hidden).map(Some),
        NewItemId::Ridge => ridge_map(vectors, dim, id_rows, held_out).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_map_and_the_adapter_folds() {
        let (n, dim, k) = (60, 5, 3);
        let x: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 4.0)
            .collect();
        // y = A x + c, exactly.
        let a = |j: usize, c: usize| (j as f32 + 1.0) * if c % 2 == 0 { 0.5 } else { -0.25 };
        let mut rows = vec![vec![0f32; k]];
        for i in 0..n {
            rows.push(
                (0..k)
                    .map(|j| {
                        0.3 * j as f32 + (0..dim).map(|c| a(j, c) * x[i * dim + c]).sum::<f32>()
                    })
                    .collect(),
            );
        }
        let t = ridge_map(&x, dim, &rows, None).unwrap();
        let w: Vec<f32> = t[0].1.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = t[1].1.to_vec1().unwrap();
        for j in 0..k {
            assert!((b[j] - 0.3 * j as f32).abs() < 0.05, "bias {j}: {}", b[j]);
            for c in 0..dim {
                assert!(
                    (w[j * dim + c] - a(j, c)).abs() < 0.05,
                    "w[{j},{c}] = {}",
                    w[j * dim + c]
                );
            }
        }
        let dev = Device::Cpu;
        let w0 = Tensor::new(&[[1f32, 2.0], [0.0, 1.0], [3.0, -1.0]], &dev).unwrap();
        let w1 = Tensor::new(&[[1f32, 0.0, 2.0]], &dev).unwrap();
        let weights = HashMap::from([
            ("adapter.0.weight".to_string(), w0),
            (
                "adapter.0.bias".to_string(),
                Tensor::new(&[1f32, 0.0, -1.0], &dev).unwrap(),
            ),
            ("adapter.1.weight".to_string(), w1),
            (
                "adapter.1.bias".to_string(),
                Tensor::new(&[0.5f32], &dev).unwrap(),
            ),
        ]);
        let m = semantic_map(&weights).unwrap();
        // W₁W₀ = [1 + 6, 2 - 2] = [7, 0]; W₁b₀ + b₁ = 1 - 2 + 0.5.
        assert_eq!(
            m[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![7.0, 0.0]
        );
        assert_eq!(m[1].1.to_vec1::<f32>().unwrap(), vec![-0.5]);
    }
}

//! Principal component projection of the semantic item table, which initialises LLM-ESR's ID table
//! (the reference runs sklearn's `PCA(n_components=64).fit_transform`).

use crate::{Error, Result};
use nalgebra::{DMatrix, SymmetricEigen};

/// The first `k` principal axes of the rows of `x` (`n × dim`, row-major): the column means and
/// the axes as columns of a `dim × k` matrix, ordered by explained variance, each axis's sign fixed
/// so that its largest loading is positive (the result is deterministic).
fn axes(x: &[f32], n: usize, dim: usize, k: usize) -> Result<(Vec<f64>, DMatrix<f64>)> {
    if n == 0 || dim == 0 || x.len() != n * dim {
        return Err(Error::Training(format!(
            "PCA input must be {n} × {dim} values, got {}",
            x.len()
        )));
    }
    if k > dim {
        return Err(Error::Config(format!(
            "cannot keep {k} principal components of {dim}-dimensional vectors"
        )));
    }
    let mut mean = vec![0f64; dim];
    for row in x.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let centred = DMatrix::from_fn(n, dim, |r, c| x[r * dim + c] as f64 - mean[c]);
    let cov = centred.tr_mul(&centred) / (n.max(2) - 1) as f64;
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut basis = DMatrix::<f64>::zeros(dim, k);
    for (j, &c) in order.iter().take(k).enumerate() {
        let col = eig.eigenvectors.column(c);
        let (mut best, mut sign) = (0f64, 1f64);
        for v in col.iter() {
            if v.abs() > best {
                best = v.abs();
                sign = v.signum();
            }
        }
        basis.set_column(j, &(col * sign));
    }
    Ok((mean, basis))
}

/// Projects the rows of `x` (`n × dim`, row-major) onto their first `k` principal components:
/// centred, not whitened, components ordered by explained variance. Each component's sign is fixed
/// so that its largest loading is positive, making the result deterministic.
pub fn project(x: &[f32], n: usize, dim: usize, k: usize) -> Result<Vec<f32>> {
    let (mean, basis) = axes(x, n, dim, k)?;
    let centred = DMatrix::from_fn(n, dim, |r, c| x[r * dim + c] as f64 - mean[c]);
    let proj = centred * basis;
    Ok((0..n)
        .flat_map(|r| (0..k).map(move |c| (r, c)))
        .map(|(r, c)| proj[(r, c)] as f32)
        .collect())
}

/// A fitted projection onto the first principal components, kept to place new rows: row `j` of
/// `components` (`k × dim`) is axis `j`, so a row `x` projects to `components · (x − mean)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub mean: Vec<f32>,
    pub components: Vec<f32>,
    pub k: usize,
    pub dim: usize,
}

impl Projection {
    /// The axes of [`project`], as a map that new rows can go through.
    pub fn fit(x: &[f32], n: usize, dim: usize, k: usize) -> Result<Self> {
        let (mean, basis) = axes(x, n, dim, k)?;
        Ok(Projection {
            mean: mean.iter().map(|&m| m as f32).collect(),
            components: (0..k)
                .flat_map(|j| (0..dim).map(move |c| (c, j)))
                .map(|(c, j)| basis[(c, j)] as f32)
                .collect(),
            k,
            dim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_component_follows_the_widest_direction() {
        // Points spread along (1, 1, 0) with a little noise along (1, -1, 0).
        let mut x = Vec::new();
        for i in 0..50 {
            let t = i as f32 - 25.0;
            let e = if i % 2 == 0 { 0.1 } else { -0.1 };
            x.extend([t + e, t - e, 0.0]);
        }
        let p = project(&x, 50, 3, 2).unwrap();
        let first: Vec<f32> = p.chunks(2).map(|r| r[0]).collect();
        // Projection of the centred points (mean t = -0.5) onto (1,1,0)/√2, up to sign.
        for (i, v) in first.iter().enumerate() {
            let t = i as f32 - 25.0 + 0.5;
            assert!((v.abs() - t.abs() * 2f32.sqrt()).abs() < 1e-3, "{i}: {v}");
        }
        let var = |c: usize| p.chunks(2).map(|r| r[c] * r[c]).sum::<f32>();
        assert!(var(0) > 100.0 * var(1));
        assert!(project(&x, 50, 3, 4).is_err());
        // The fitted map places the same rows where the projection put them.
        let map = Projection::fit(&x, 50, 3, 2).unwrap();
        for (i, row) in x.chunks(3).enumerate() {
            for j in 0..2 {
                let v: f32 = (0..3)
                    .map(|c| map.components[j * 3 + c] * (row[c] - map.mean[c]))
                    .sum();
                assert!((v - p[i * 2 + j]).abs() < 1e-3, "{i} {j}");
            }
        }
    }
}

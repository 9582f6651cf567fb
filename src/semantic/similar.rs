//! Exact nearest users by cosine similarity of their language-model embeddings, computed in blocks
//! of matrix products so memory stays at block × users.

use crate::Result;
use candle_core::{Device, Tensor};

const BLOCK: usize = 512;

/// Scales each row to unit length (zero rows stay zero).
pub fn normalise_rows(x: &mut [f32], dim: usize) {
    for row in x.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// For each of the `n` rows of `x` (`n × dim`), the indices of the `top` most similar other rows,
/// most similar first (ties by lower index). The row itself is excluded by index.
pub fn most_similar(x: &[f32], n: usize, dim: usize, top: usize) -> Result<Vec<Vec<u32>>> {
    let mut unit = x.to_vec();
    normalise_rows(&mut unit, dim);
    let all = Tensor::from_vec(unit, (n, dim), &Device::Cpu)?;
    let all_t = all.t()?.contiguous()?;
    let keep = top.min(n.saturating_sub(1));
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let sims: Vec<Vec<f32>> = all.narrow(0, start, len)?.matmul(&all_t)?.to_vec2()?;
        for (r, row) in sims.iter().enumerate() {
            let me = start + r;
            let mut cands: Vec<u32> = (0..n as u32).filter(|&c| c as usize != me).collect();
            let order =
                |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
            if keep < cands.len() && keep > 0 {
                cands.select_nth_unstable_by(keep - 1, order);
            }
            cands.truncate(keep);
            cands.sort_by(order);
            out.push(cands);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_by_angle_and_never_self() {
        // Rows 0 and 2 point the same way (different lengths); row 1 is orthogonal.
        let x = [1.0, 0.0, 0.0, 1.0, 3.0, 0.1, -1.0, 0.0];
        let s = most_similar(&x, 4, 2, 2).unwrap();
        assert_eq!(s[0], vec![2, 1]);
        assert_eq!(s[2][0], 0);
        assert!(s.iter().enumerate().all(|(i, l)| !l.contains(&(i as u32))));
        assert_eq!(most_similar(&x, 4, 2, 10).unwrap()[0].len(), 3);
    }
}

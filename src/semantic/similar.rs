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

/// How candidate neighbours are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hubness {
    /// Plain cosine similarity (the reference).
    Cosine,
    /// Cross-domain similarity local scaling (Conneau et al. 2018): `2·cos(u, v) − r(u) − r(v)`,
    /// where `r(v)` is `v`'s mean cosine to its `k` nearest rows. Rows that are near everyone
    /// ("hubs") pay for it, so they fill fewer lists.
    Csls { k: usize },
}

impl Hubness {
    pub fn label(&self) -> String {
        match self {
            Hubness::Cosine => String::new(),
            Hubness::Csls { k } => format!("csls-{k}"),
        }
    }
}

/// For each of the `n` rows of `x` (`n × dim`), the indices of the `top` most similar other rows,
/// most similar first (ties by lower index). The row itself is excluded by index.
pub fn most_similar(x: &[f32], n: usize, dim: usize, top: usize) -> Result<Vec<Vec<u32>>> {
    most_similar_with(x, n, dim, top, Hubness::Cosine)
}

/// Blocks of cosine similarities: calls `f(row, similarities to every row)` for each row.
fn for_each_row(
    all: &Tensor,
    all_t: &Tensor,
    n: usize,
    mut f: impl FnMut(usize, &[f32]),
) -> Result<()> {
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let sims: Vec<Vec<f32>> = all.narrow(0, start, len)?.matmul(all_t)?.to_vec2()?;
        for (r, row) in sims.iter().enumerate() {
            f(start + r, row);
        }
    }
    Ok(())
}

/// [`most_similar`] with a choice of how candidates are ranked.
pub fn most_similar_with(
    x: &[f32],
    n: usize,
    dim: usize,
    top: usize,
    hubness: Hubness,
) -> Result<Vec<Vec<u32>>> {
    let mut unit = x.to_vec();
    normalise_rows(&mut unit, dim);
    let all = Tensor::from_vec(unit, (n, dim), &Device::Cpu)?;
    let all_t = all.t()?.contiguous()?;
    // Half of each candidate's CSLS term: the query's own term ranks nothing.
    let mut penalty = vec![0f32; n];
    if let Hubness::Csls { k } = hubness {
        let k = k.clamp(1, n.saturating_sub(1).max(1));
        for_each_row(&all, &all_t, n, |me, row| {
            let mut others: Vec<f32> = row
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != me)
                .map(|(_, &v)| v)
                .collect();
            if others.is_empty() {
                return;
            }
            let k = k.min(others.len());
            others.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            penalty[me] = others[..k].iter().sum::<f32>() / k as f32 / 2.0;
        })?;
    }
    let keep = top.min(n.saturating_sub(1));
    let mut out = Vec::with_capacity(n);
    for_each_row(&all, &all_t, n, |me, row| {
        let score: Vec<f32> = row.iter().zip(&penalty).map(|(s, p)| s - p).collect();
        let mut cands: Vec<u32> = (0..n as u32).filter(|&c| c as usize != me).collect();
        let order = |a: &u32, b: &u32| {
            score[*b as usize]
                .total_cmp(&score[*a as usize])
                .then(a.cmp(b))
        };
        if keep < cands.len() && keep > 0 {
            cands.select_nth_unstable_by(keep - 1, order);
        }
        cands.truncate(keep);
        cands.sort_by(order);
        out.push(cands);
    })?;
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

    #[test]
    fn csls_demotes_a_row_that_is_near_everyone() {
        // Row 0 sits between the pairs (1, 2) and (3, 4), a little nearer to rows 1 and 3 than
        // their partners are: by cosine their nearest row is the hub, by CSLS their partner.
        let a = |t: f32| [t.cos(), t.sin()];
        let rows = [a(0.0), a(0.30), a(0.62), a(-0.30), a(-0.62)];
        let x: Vec<f32> = rows.iter().flatten().copied().collect();
        let plain = most_similar(&x, 5, 2, 1).unwrap();
        assert_eq!((plain[1][0], plain[3][0]), (0, 0), "{plain:?}");
        let csls = most_similar_with(&x, 5, 2, 1, Hubness::Csls { k: 2 }).unwrap();
        assert_eq!((csls[1][0], csls[3][0]), (2, 4), "{csls:?}");
        assert_eq!(Hubness::Csls { k: 10 }.label(), "csls-10");
    }
}

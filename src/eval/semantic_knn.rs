//! The text-only floor: every item is scored by the cosine between its language-model embedding
//! and the mean embedding of the user's most recent items. It measures what the semantic view's
//! input knows about a user's next item before any training.

use super::evaluate::Scorer;
use crate::{Error, Result};

pub struct SemanticNeighbours {
    /// `[n_items, dim]`, L2-normalised rows; row `i` is item id `i + 1`.
    items: Vec<f32>,
    dim: usize,
    /// How many of the newest session items make the profile.
    recent: usize,
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl SemanticNeighbours {
    /// `items` is `[n_items, dim]` row-major, row `i` for item id `i + 1`.
    pub fn new(mut items: Vec<f32>, dim: usize, recent: usize) -> Result<Self> {
        if dim == 0 || items.len() % dim != 0 {
            return Err(Error::Config(format!(
                "item vectors: {} values do not make rows of {dim}",
                items.len()
            )));
        }
        if recent == 0 {
            return Err(Error::Config(
                "the text-only floor needs at least one recent item (--recent)".into(),
            ));
        }
        items.chunks_exact_mut(dim).for_each(normalise);
        Ok(SemanticNeighbours { items, dim, recent })
    }

    fn n_items(&self) -> usize {
        self.items.len() / self.dim
    }
}

impl Scorer for SemanticNeighbours {
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let n = self.n_items();
        inputs
            .iter()
            .map(|input| {
                let mut profile = vec![0f32; self.dim];
                let start = input.len().saturating_sub(self.recent);
                for &id in &input[start..] {
                    let row = (id as usize)
                        .checked_sub(1)
                        .filter(|&r| r < n)
                        .ok_or_else(|| {
                            Error::Request(format!("unknown item id {id}: ids run from 1 to {n}"))
                        })?;
                    for (p, x) in profile
                        .iter_mut()
                        .zip(&self.items[row * self.dim..(row + 1) * self.dim])
                    {
                        *p += x;
                    }
                }
                normalise(&mut profile);
                let mut scores = Vec::with_capacity(n + 1);
                scores.push(f32::NEG_INFINITY);
                scores.extend(
                    self.items
                        .chunks_exact(self.dim)
                        .map(|row| crate::kernels::dot::dot(&profile, row)),
                );
                Ok(scores)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_text_ranks_first_and_only_recent_items_count() {
        // Items 1 and 2 point one way, 3 and 4 another.
        let items = vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
        let knn = SemanticNeighbours::new(items, 2, 1).unwrap();
        let s = &knn.score(&[&[3, 1]]).unwrap()[0];
        assert!(s[2] > s[4], "the newest item (1) decides: {s:?}");
        let knn =
            SemanticNeighbours::new(vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9], 2, 3).unwrap();
        let s = &knn.score(&[&[3, 3, 1]]).unwrap()[0];
        assert!(
            s[4] > s[2],
            "three recent items: 3 (twice) outweighs 1: {s:?}"
        );
    }

    #[test]
    fn refuses_unknown_ids_and_bad_shapes() {
        let knn = SemanticNeighbours::new(vec![1.0, 0.0], 2, 5).unwrap();
        assert!(knn.score(&[&[2]]).is_err());
        assert!(SemanticNeighbours::new(vec![1.0, 0.0, 1.0], 2, 5).is_err());
        assert!(SemanticNeighbours::new(vec![1.0, 0.0], 2, 0).is_err());
    }
}

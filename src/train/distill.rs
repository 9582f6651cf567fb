//! Retrieval-augmented self-distillation (`LLM-ESR/models/LLMESR.py`): each user's representation
//! is pulled, by MSE, toward the detached mean representation of its most similar users, where
//! similarity was measured on language-model embeddings of the users' histories.

use super::config::Teacher;
use super::sampler::user_input;
use crate::data::Dataset;
use crate::model::{Backbone, SeqBatch, SeqRec};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rand::rngs::SmallRng;
use std::collections::HashMap;

/// Sequences per teacher forward pass; bounds the memory of the attention scores.
const TEACHER_CHUNK: usize = 256;

pub struct Distiller {
    /// Per user, the first `k` similar users that have a training sequence to encode.
    similar: Vec<Vec<u32>>,
    teacher: Teacher,
    /// Cached teacher only: the latest representation of each user, `[U][W]`.
    cache: Vec<Option<Vec<f32>>>,
}

impl Distiller {
    /// `similar[u]` lists user indices, most similar first (the user itself may appear; it is
    /// skipped by index rather than assumed to be in column 0).
    pub fn new(data: &Dataset, similar: &[Vec<u32>], k: usize, teacher: Teacher) -> Result<Self> {
        if similar.len() != data.n_users() {
            return Err(Error::Dataset(format!(
                "similar-user lists cover {} users, the dataset has {}",
                similar.len(),
                data.n_users()
            )));
        }
        let usable = |v: usize| {
            v < data.n_users() && crate::data::split::train_part(&data.sequences[v]).len() >= 2
        };
        let similar = similar
            .iter()
            .enumerate()
            .map(|(u, list)| {
                list.iter()
                    .copied()
                    .filter(|&v| v as usize != u && usable(v as usize))
                    .take(k)
                    .collect()
            })
            .collect();
        Ok(Distiller {
            similar,
            teacher,
            cache: vec![None; data.n_users()],
        })
    }

    /// The teacher for each user of a batch, `[B, W]`, and a `[B, 1]` mask of users that have one.
    pub fn teacher(
        &self,
        model: &SeqRec,
        tables: &[Tensor],
        data: &Dataset,
        users: &[usize],
        rng: &mut SmallRng,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let device = Device::Cpu;
        let width = model.config().user_width();
        let mut rows: Vec<f32> = Vec::with_capacity(users.len() * width);
        let mut mask = Vec::with_capacity(users.len());
        match self.teacher {
            Teacher::Fresh => {
                // Encode each distinct similar user once per step.
                let mut index: HashMap<u32, usize> = HashMap::new();
                let mut order: Vec<u32> = Vec::new();
                for &u in users {
                    for &v in &self.similar[u] {
                        index.entry(v).or_insert_with(|| {
                            order.push(v);
                            order.len() - 1
                        });
                    }
                }
                if order.is_empty() {
                    return Ok(None);
                }
                let reps = encode_users(model, tables, data, &order, rng)?;
                for &u in users {
                    let sims = &self.similar[u];
                    mask.push(if sims.is_empty() { 0f32 } else { 1.0 });
                    let mut mean = vec![0f32; width];
                    for &v in sims {
                        let at = index[&v] * width;
                        for (m, x) in mean.iter_mut().zip(&reps[at..at + width]) {
                            *m += x / sims.len() as f32;
                        }
                    }
                    rows.extend(mean);
                }
            }
            Teacher::Cached => {
                for &u in users {
                    let cached: Vec<&Vec<f32>> = self.similar[u]
                        .iter()
                        .filter_map(|&v| self.cache[v as usize].as_ref())
                        .collect();
                    mask.push(if cached.is_empty() { 0f32 } else { 1.0 });
                    let mut mean = vec![0f32; width];
                    for c in &cached {
                        for (m, x) in mean.iter_mut().zip(c.iter()) {
                            *m += x / cached.len() as f32;
                        }
                    }
                    rows.extend(mean);
                }
            }
        }
        if mask.iter().all(|&m| m == 0.0) {
            return Ok(None);
        }
        let b = users.len();
        Ok(Some((
            Tensor::from_vec(rows, (b, width), &device)?,
            Tensor::from_vec(mask, (b, 1), &device)?,
        )))
    }

    /// Cached teacher, BERT4Rec: the representations to remember for `users`, `[B, W]`, from a
    /// pass of its own over their unmasked training sequences. BERT4Rec's training input is a
    /// cloze sample, not the sequence a teacher encodes, so the student's representation cannot
    /// be reused as the other backbones' is; this pass encodes B sequences per step where the
    /// fresh teacher encodes up to 10·B. `None` where the student's representation is the one to
    /// remember (the other backbones, and the fresh teacher, which remembers nothing).
    pub fn own_pass(
        &self,
        model: &SeqRec,
        tables: &[Tensor],
        data: &Dataset,
        users: &[usize],
        rng: &mut SmallRng,
    ) -> Result<Option<Tensor>> {
        if self.teacher != Teacher::Cached || model.backbone() != Backbone::Bert4rec {
            return Ok(None);
        }
        let ids: Vec<u32> = users.iter().map(|&u| u as u32).collect();
        let reps = encode_users(model, tables, data, &ids, rng)?;
        let width = model.config().user_width();
        Ok(Some(Tensor::from_vec(
            reps,
            (users.len(), width),
            &Device::Cpu,
        )?))
    }

    /// Cached teacher: remember the (detached) representations just computed for `users`.
    pub fn record(&mut self, users: &[usize], student: &Tensor) -> Result<()> {
        if self.teacher != Teacher::Cached {
            return Ok(());
        }
        let rows: Vec<Vec<f32>> = student.detach().to_dtype(DType::F32)?.to_vec2()?;
        for (&u, r) in users.iter().zip(rows) {
            self.cache[u] = Some(r);
        }
        Ok(())
    }
}

impl Distiller {
    /// The cached teacher's table for resume files: `[U, W]` values and a `[U]` u8 mask of users
    /// that have one (`None` when nothing is cached).
    pub fn cache_state(&self, width: usize) -> Result<Option<(Tensor, Tensor)>> {
        if self.teacher != Teacher::Cached {
            return Ok(None);
        }
        let n = self.cache.len();
        let mut values = vec![0f32; n * width];
        let mut present = vec![0u8; n];
        for (u, row) in self.cache.iter().enumerate() {
            if let Some(r) = row {
                values[u * width..(u + 1) * width].copy_from_slice(r);
                present[u] = 1;
            }
        }
        Ok(Some((
            Tensor::from_vec(values, (n, width), &Device::Cpu)?,
            Tensor::from_vec(present, n, &Device::Cpu)?,
        )))
    }

    /// Restores what [`Distiller::cache_state`] saved.
    pub fn restore_cache(&mut self, values: &Tensor, present: &Tensor) -> Result<()> {
        let rows: Vec<Vec<f32>> = values.to_vec2()?;
        let present: Vec<u8> = present.to_vec1()?;
        if rows.len() != self.cache.len() || present.len() != self.cache.len() {
            return Err(Error::Training(format!(
                "resume state caches {} users, the dataset has {}",
                rows.len(),
                self.cache.len()
            )));
        }
        for ((slot, row), p) in self.cache.iter_mut().zip(rows).zip(present) {
            *slot = (p == 1).then_some(row);
        }
        Ok(())
    }
}

/// The detached representations of `users`' training sequences (each minus its newest item, as
/// the reference's teacher reads them), `users.len() × W` values in `users`' order, dropout on.
fn encode_users(
    model: &SeqRec,
    tables: &[Tensor],
    data: &Dataset,
    users: &[u32],
    rng: &mut SmallRng,
) -> Result<Vec<f32>> {
    let cfg = model.config();
    let width = cfg.user_width();
    // Length-sorted chunks leave almost no padding after [`SeqBatch::fitted`]. The sort is stable, so
    // equal inputs give equal chunks and dropout draws.
    let mut order: Vec<usize> = (0..users.len()).collect();
    order.sort_by_key(|&i| user_input(data, users[i] as usize).len());
    let mut reps = vec![0f32; users.len() * width];
    for chunk in order.chunks(TEACHER_CHUNK) {
        let padded: Vec<Vec<u32>> = chunk
            .iter()
            .map(|&i| {
                crate::data::split::pad_left(user_input(data, users[i] as usize), cfg.max_len)
            })
            .collect();
        let batch = SeqBatch::fitted(padded, cfg, &Device::Cpu)?;
        let r: Vec<f32> = model
            .user_repr(tables, &batch, Some(rng))?
            .detach()
            .flatten_all()?
            .to_vec1()?;
        for (&i, row) in chunk.iter().zip(r.chunks_exact(width)) {
            reps[i * width..(i + 1) * width].copy_from_slice(row);
        }
    }
    Ok(reps)
}

/// Mean squared error over the masked rows (the reference's `MSELoss`, mean over B × W).
pub fn masked_mse(
    student: &Tensor,
    teacher: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let width = student.dim(1)? as f64;
    let sq = (student - teacher)?.sqr()?.broadcast_mul(mask)?.sum_all()?;
    sq.broadcast_div(&(mask.sum_all()? * width)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::SemanticConfig;
    use crate::model::init::seeded_init;
    use crate::model::{ModelConfig, Visibility};
    use candle_core::Var;
    use candle_nn::{VarBuilder, VarMap};
    use rand::SeedableRng;

    fn data() -> Dataset {
        let sequences: Vec<Vec<u32>> = (0..6u32)
            .map(|u| (0..4 + u).map(|i| 1 + (u + 2 * i) % 12).collect())
            .collect();
        Dataset {
            name: "t".into(),
            item_keys: (0..=12).map(|i| format!("i{i}")).collect(),
            item_titles: (0..=12).map(|i| format!("i{i}")).collect(),
            user_keys: (0..6).map(|u| format!("u{u}")).collect(),
            sequences,
        }
    }

    fn model(backbone: Backbone) -> (VarMap, SeqRec) {
        let mut cfg = ModelConfig::reference(backbone, 12);
        cfg.max_len = 8;
        cfg.hidden = 16;
        cfg.n_heads = 2;
        cfg.dropout = 0.0;
        cfg.semantic = Some(SemanticConfig::reference(10));
        let vars = VarMap::new();
        let m = SeqRec::new(
            &cfg,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )
        .unwrap();
        seeded_init(&vars, 3).unwrap();
        (vars, m)
    }

    #[test]
    fn bert4rec_cached_teacher_remembers_the_unmasked_sequences() {
        let data = data();
        let similar: Vec<Vec<u32>> = (0..6u32).map(|u| vec![(u + 1) % 6, (u + 2) % 6]).collect();
        let users = [4usize, 0, 5, 0];
        let mut rng = SmallRng::seed_from_u64(1);
        let (_v, bert) = model(Backbone::Bert4rec);
        let tables = bert.item_tables().unwrap();
        let cached = Distiller::new(&data, &similar, 2, Teacher::Cached).unwrap();
        let rows = cached
            .own_pass(&bert, &tables, &data, &users, &mut rng)
            .unwrap()
            .expect("BERT4Rec's cached teacher encodes its own pass");
        // What the fresh teacher would encode for these users, one at a time, dropout off.
        for (row, &u) in users.iter().enumerate() {
            let seq = vec![crate::data::split::pad_left(user_input(&data, u), 8)];
            let batch = SeqBatch::new(&seq, Visibility::of(bert.config()), &Device::Cpu).unwrap();
            let want = bert.user_repr(&tables, &batch, None).unwrap();
            let got = rows.narrow(0, row, 1).unwrap();
            let diff = crate::model::testing::max_diff(&got, &want);
            assert!(diff < 1e-5, "user {u}: {diff}");
        }
        // The student's representation serves the other backbones and the fresh teacher.
        let fresh = Distiller::new(&data, &similar, 2, Teacher::Fresh).unwrap();
        assert!(fresh
            .own_pass(&bert, &tables, &data, &users, &mut rng)
            .unwrap()
            .is_none());
        let (_v, sasrec) = model(Backbone::Sasrec);
        let tables = sasrec.item_tables().unwrap();
        assert!(cached
            .own_pass(&sasrec, &tables, &data, &users, &mut rng)
            .unwrap()
            .is_none());
    }

    #[test]
    fn mse_gradient_reaches_the_student_only_where_masked() {
        let x = Var::from_slice(&[1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu).unwrap();
        let t = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        let m = Tensor::new(&[[1f32], [0.0]], &Device::Cpu).unwrap();
        let loss = masked_mse(x.as_tensor(), &t, &m).unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 2.5);
        let g = loss.backward().unwrap();
        let g: Vec<Vec<f32>> = g.get(x.as_tensor()).unwrap().to_vec2().unwrap();
        assert_eq!(g, vec![vec![1.0, 2.0], vec![0.0, 0.0]]);
    }
}

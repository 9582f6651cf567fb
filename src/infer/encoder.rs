//! The shared sequence encoder for one session: the transformer stack (SASRec, BERT4Rec) or the
//! GRU (GRU4Rec), computing only what the newest position needs.
//!
//! A session is encoded without padding. In corrected mode padding is dead (masked keys, zeroed
//! GRU inputs), so this is exact; in paper-faithful mode the padding that the training code lets
//! attention and the GRU see is reproduced exactly: as one weighted key ([`PadKey`]) in the
//! transformer, as the real pad steps in the GRU.

use super::attention::{attend, AttendScratch, PadKey, Reach};
use super::dense::{Dense, LayerNorm, Weights};
use crate::kernels::dot::add_into;
use crate::model::ModelConfig;
use crate::Result;

struct Block {
    ln_attn: LayerNorm,
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    ln_ffn: LayerNorm,
    ff1: Dense,
    ff2: Dense,
}

/// Scratch buffers, reused across sessions so a recommendation allocates nothing once warm.
#[derive(Default)]
pub struct EncoderScratch {
    qin: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: AttendScratch,
    ctx: Vec<f32>,
    y: Vec<f32>,
    h: Vec<f32>,
    h2: Vec<f32>,
    next: Vec<f32>,
    rows: Vec<usize>,
    gi: Vec<f32>,
    gh: Vec<f32>,
}

pub struct Transformer {
    blocks: Vec<Block>,
    ln_last: LayerNorm,
    d: usize,
    heads: usize,
    reach: Reach,
}

pub struct Gru {
    ih: Dense,
    hh: Dense,
    d: usize,
}

pub enum Encoder {
    Transformer(Transformer),
    Gru(Gru),
}

impl Encoder {
    /// `reach` is the self-attention's visibility (transformers only).
    pub fn load(cfg: &ModelConfig, ws: &Weights, reach: Reach) -> Result<Self> {
        let d = cfg.hidden;
        if !cfg.backbone.is_transformer() {
            return Ok(Encoder::Gru(Gru {
                ih: gru_matrix(ws, "gru.weight_ih", d)?,
                hh: gru_matrix(ws, "gru.weight_hh", d)?,
                d,
            }));
        }
        let ln = |p: &str| LayerNorm::load(ws, p, d, cfg.ln_eps);
        let lin = |p: &str| Dense::load(ws, p, d, d, true);
        let blocks = (0..cfg.n_layers)
            .map(|i| {
                let p = format!("blocks.{i}");
                Ok(Block {
                    ln_attn: ln(&format!("{p}.ln_attn"))?,
                    q: lin(&format!("{p}.attn.q"))?,
                    k: lin(&format!("{p}.attn.k"))?,
                    v: lin(&format!("{p}.attn.v"))?,
                    out: lin(&format!("{p}.attn.out"))?,
                    ln_ffn: ln(&format!("{p}.ln_ffn"))?,
                    ff1: lin(&format!("{p}.ff1"))?,
                    ff2: lin(&format!("{p}.ff2"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Encoder::Transformer(Transformer {
            blocks,
            ln_last: ln("ln_last")?,
            d,
            heads: cfg.n_heads,
            reach,
        }))
    }
}

/// The GRU's stacked gate matrices are stored without a `.weight` suffix.
fn gru_matrix(ws: &Weights, name: &str, d: usize) -> Result<Dense> {
    Ok(Dense::from_parts(
        ws.get(name, &[3 * d, d])?,
        None,
        d,
        3 * d,
    ))
}

impl Transformer {
    /// Encodes `x` (`n` rows of `d`: item embedding × √d + position) and returns the final state
    /// of the newest row in `out`. `pad` is the number of padding rows paper-faithful mode lets
    /// attention see (0 in corrected mode).
    pub fn forward(&self, x: &[f32], pad: usize, s: &mut EncoderScratch, out: &mut [f32]) {
        let d = self.d;
        let n = x.len() / d;
        s.next.clear();
        s.next.extend_from_slice(x);
        for (i, b) in self.blocks.iter().enumerate() {
            let last = i + 1 == self.blocks.len();
            // Earlier blocks need every row as keys and values of the next; the last block only
            // needs the newest row's query.
            s.rows.clear();
            if last {
                s.rows.push(n - 1);
            } else {
                s.rows.extend(0..n);
            }
            let xs = &s.next;
            let q_src = if last { &xs[(n - 1) * d..] } else { &xs[..] };
            b.ln_attn.forward(q_src, &mut s.qin);
            b.q.forward(&s.qin, &mut s.q);
            b.k.forward(xs, &mut s.k);
            b.v.forward(xs, &mut s.v);
            // Padding rows are zero, so their keys and values are the projections' biases.
            let (pk, pv): (Vec<f32>, Vec<f32>) = if pad > 0 {
                (
                    (0..d).map(|o| b.k.bias_or_zero(o)).collect(),
                    (0..d).map(|o| b.v.bias_or_zero(o)).collect(),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            let pad_key = (pad > 0).then_some(PadKey {
                k: &pk,
                v: &pv,
                count: pad,
            });
            attend(
                &s.q,
                &s.rows,
                &s.k,
                &s.v,
                d,
                self.heads,
                self.reach,
                pad_key.as_ref(),
                &mut s.att,
                &mut s.ctx,
            );
            b.out.forward(&s.ctx, &mut s.y);
            add_into(&mut s.y, &s.qin);
            b.ln_ffn.forward(&s.y, &mut s.h2);
            b.ff1.forward(&s.h2, &mut s.h);
            for v in s.h.iter_mut() {
                *v = v.max(0.0);
            }
            b.ff2.forward(&s.h, &mut s.y);
            add_into(&mut s.y, &s.h2);
            std::mem::swap(&mut s.next, &mut s.y);
        }
        let newest = &s.next[s.next.len() - d..];
        self.ln_last.forward(newest, &mut s.h);
        out.copy_from_slice(&s.h);
    }
}

impl Gru {
    /// Runs `pad_steps` steps of `pad_input` (paper-faithful padding), then every row of `x`, and
    /// writes the final state to `out`.
    pub fn forward(
        &self,
        x: &[f32],
        pad_input: Option<&[f32]>,
        pad_steps: usize,
        s: &mut EncoderScratch,
        out: &mut [f32],
    ) {
        let d = self.d;
        let h = out;
        h.fill(0.0);
        if let Some(p) = pad_input.filter(|_| pad_steps > 0) {
            let mut gi = vec![0f32; 3 * d];
            self.ih.forward_row(p, &mut gi);
            for _ in 0..pad_steps {
                self.step(&gi, h, &mut s.gh);
            }
        }
        self.ih.forward(x, &mut s.gi);
        let gi = std::mem::take(&mut s.gi);
        for g in gi.chunks_exact(3 * d) {
            self.step(g, h, &mut s.gh);
        }
        s.gi = gi;
    }

    /// One step with gate order r, z, n (torch's): h ← n + z ⊙ (h − n).
    fn step(&self, gi: &[f32], h: &mut [f32], gh: &mut Vec<f32>) {
        let d = self.d;
        self.hh.forward(h, gh);
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        for j in 0..d {
            let r = sigmoid(gi[j] + gh[j]);
            let z = sigmoid(gi[d + j] + gh[d + j]);
            let n = (gi[2 * d + j] + r * gh[2 * d + j]).tanh();
            h[j] = n + z * (h[j] - n);
        }
    }
}

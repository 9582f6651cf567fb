//! The fast inference path (`infer::Engine`, what `recommend` and the browser run) against the
//! straightforward one (the candle model rebuilt from the same bundle): the same scores within
//! 1e-4 for every backbone, variant, mode and table type, at session lengths from one item to
//! past `max_len`; and the quantized bundles' sizes and errors in the expected order.

use candle_core::Tensor;
use llm_esr::bundle::{self, Bundle, EncoderType, Manifest, Precision, TableType};
use llm_esr::infer::Engine;
use llm_esr::model::init::random_weights;
use llm_esr::model::SeqRec;
use llm_esr::model::{Backbone, Mode, ModelConfig, SemanticConfig};
use llm_esr::recommend::Recommender;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

const N: usize = 50;

/// `variant`: 0 = base, 1 = LLM-ESR, 2 = LLM-ESR with residual cross-attention.
fn config(backbone: Backbone, variant: u8, mode: Mode) -> ModelConfig {
    let mut cfg = ModelConfig::reference(backbone, N);
    cfg.max_len = 12;
    cfg.hidden = 32;
    cfg.n_heads = 2;
    cfg.mode = mode;
    if variant > 0 {
        let mut sem = SemanticConfig::reference(32);
        sem.folded = true;
        sem.cross_residual = variant == 2;
        cfg.semantic = Some(sem);
    }
    cfg
}

/// Seeded weights with every bias and LayerNorm shifted off its initial value, so the padding
/// keys of paper-faithful mode (whose keys are the projection biases) matter.
fn weights(cfg: &ModelConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut rng = SmallRng::seed_from_u64(seed);
    random_weights(cfg, seed)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let n = t.elem_count();
            let noise: Vec<f32> = (0..n).map(|_| rng.random_range(-0.2..0.2)).collect();
            let noise = Tensor::from_vec(noise, t.shape(), t.device()).unwrap();
            (k, (t + noise).unwrap())
        })
        .collect()
}

fn sessions() -> Vec<Vec<u32>> {
    vec![
        vec![7],
        vec![3, 9, 27],
        (1..=11).collect(),
        (1..=12).collect(),
        (5..=40).rev().collect(),
    ]
}

#[test]
fn fast_path_equals_the_candle_model_everywhere() {
    for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
        for variant in [0, 1, 2] {
            for mode in [Mode::Corrected, Mode::Faithful] {
                let cfg = config(backbone, variant, mode);
                let w = weights(&cfg, 3);
                for tables in TableType::ALL {
                    let p = Precision {
                        tables,
                        encoder: EncoderType::F32,
                    };
                    let bytes = bundle::write_with(&Manifest::synthetic("t", &cfg), &w, p).unwrap();
                    let rec = Recommender::from_bytes(&bytes).unwrap();
                    let b = Bundle::from_bytes(&bytes).unwrap();
                    assert_eq!(b.precision, p);
                    let ss = sessions();
                    let refs: Vec<&[u32]> = ss.iter().map(Vec::as_slice).collect();
                    let want = SeqRec::from_bundle(&b)
                        .unwrap()
                        .score_histories(&refs)
                        .unwrap();
                    // With a cross-attention the engine gathers projected items (small
                    // catalogues); without the tables it multiplies, and must agree.
                    let mut multiplying = Engine::new(&b).unwrap();
                    assert_eq!(multiplying.has_projections(), variant > 0);
                    multiplying.set_projections(false);
                    for (s, w) in ss.iter().zip(&want) {
                        let got = rec.scores(s).unwrap();
                        let slow = multiplying.scores(s);
                        let gap = got
                            .iter()
                            .zip(&slow)
                            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                            .fold(0f32, f32::max);
                        assert!(
                            gap < 1e-5,
                            "{backbone:?} {variant} {mode:?} {tables}: {gap}"
                        );
                        let diff = got[1..=N]
                            .iter()
                            .zip(&w[1..=N])
                            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                            .fold(0f32, f32::max);
                        // Quantized tables are scored against the quantized query (half a step of
                        // max|u|/127 a value, `QueryQ8`), so their scores move by up to a few
                        // hundredths here; the quantized arithmetic itself is checked exactly in
                        // `infer::table` and `kernels::dot`. Everything else must agree to 1e-4.
                        let tol = if matches!(tables, TableType::Q8 | TableType::Q4) {
                            5e-2
                        } else {
                            1e-4
                        };
                        assert!(
                            diff < tol,
                            "{backbone:?} variant {variant} {mode:?} {tables}: session of {} differs by {diff}",
                            s.len()
                        );
                        // The top k comes from the same scores, session items left out.
                        let top = rec.recommend(s, 5, true).unwrap();
                        assert_eq!(top.len(), 5);
                        for r in &top {
                            assert!(!s.contains(&r.id));
                            assert!((r.score - got[r.id as usize]).abs() < 1e-6);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn quantized_bundles_shrink_and_lose_little() {
    let cfg = config(Backbone::Sasrec, 1, Mode::Corrected);
    let w = weights(&cfg, 9);
    let write = |tables, encoder| {
        bundle::write_with(
            &Manifest::synthetic("t", &cfg),
            &w,
            Precision { tables, encoder },
        )
        .unwrap()
    };
    let f32b = write(TableType::F32, EncoderType::F32);
    let base = Recommender::from_bytes(&f32b)
        .unwrap()
        .scores(&[4, 8, 15])
        .unwrap();
    let mut last_size = f32b.len();
    let mut last_err = 0.0f32;
    for t in [TableType::F16, TableType::Q8, TableType::Q4] {
        let b = write(t, EncoderType::F32);
        assert!(
            b.len() < last_size,
            "{t} is smaller than the type before it"
        );
        let s = Recommender::from_bytes(&b)
            .unwrap()
            .scores(&[4, 8, 15])
            .unwrap();
        let err = s
            .iter()
            .zip(&base)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err >= last_err,
            "{t}: error {err} below the finer type's {last_err}"
        );
        last_size = b.len();
        last_err = err;
    }
    // An f16 encoder halves the encoder's bytes and still loads and scores.
    let half = write(TableType::Q8, EncoderType::F16);
    let rec = Recommender::from_bytes(&half).unwrap();
    assert_eq!(rec.precision().encoder, EncoderType::F16);
    assert!(rec.scores(&[1, 2]).unwrap().iter().all(|x| x.is_finite()));
}

#[test]
fn block_types_need_whole_blocks_per_row() {
    let mut cfg = config(Backbone::Sasrec, 0, Mode::Corrected);
    cfg.hidden = 16;
    let w = random_weights(&cfg, 1).unwrap();
    let p = Precision {
        tables: TableType::Q8,
        encoder: EncoderType::F32,
    };
    let e = bundle::write_with(&Manifest::synthetic("t", &cfg), &w, p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 32"), "{e}");
}

#[test]
fn serving_options_are_checked_and_explained() {
    use llm_esr::recommend::Options;
    let cfg = config(Backbone::Sasrec, 1, Mode::Corrected);
    let w = weights(&cfg, 5);
    let rec = Recommender::from_bytes(&bundle::write(&Manifest::synthetic("t", &cfg), &w).unwrap())
        .unwrap();
    let session = [3u32, 9, 27];
    for bad in [f32::NAN, -0.5, f32::INFINITY] {
        let opts = Options {
            exclude_session: true,
            tail_weight: bad,
        };
        let e = rec
            .recommend_with(&session, 5, opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tail weight"), "{e}");
    }
    let plain = rec.recommend(&session, 10, true).unwrap();
    // Each recommendation names the session item nearest to it.
    assert!(plain
        .iter()
        .all(|r| r.because.is_some_and(|b| session.contains(&b))));
    // Weight 0 is the plain ranking; a large weight moves the list toward less-popular items
    // (the synthetic catalogue's popularity is the item id).
    let zero = rec
        .recommend_with(&session, 10, Options::default())
        .unwrap();
    assert_eq!(
        zero.iter().map(|r| r.id).collect::<Vec<_>>(),
        plain.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let heavy = rec
        .recommend_with(
            &session,
            10,
            Options {
                exclude_session: true,
                tail_weight: 2.0,
            },
        )
        .unwrap();
    let mean_id = |rs: &[llm_esr::recommend::Recommendation]| {
        rs.iter().map(|r| r.id as f32).sum::<f32>() / rs.len() as f32
    };
    assert!(mean_id(&heavy) < mean_id(&plain));
    assert!(heavy.iter().all(|r| !session.contains(&r.id)));
    // With session items allowed back, an item is never its own reason.
    let again = rec.recommend(&session, 60, false).unwrap();
    assert!(again.iter().any(|r| session.contains(&r.id)));
    assert!(again.iter().all(|r| r.because != Some(r.id)));
}

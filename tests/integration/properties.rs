//! Property tests of `Recommender::recommend` on a randomly initialised model: results are sorted,
//! as long as asked where the catalogue allows, free of session items when excluded, and — in
//! corrected mode — independent of how much padding a session needs.

use candle_core::Tensor;
use llm_esr::bundle::{self, Manifest};
use llm_esr::model::init::random_weights;
use llm_esr::model::{Mode, ModelConfig};
use llm_esr::recommend::Recommender;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const N: usize = 40;

fn recommender(cfg: &ModelConfig, w: &HashMap<String, Tensor>) -> Recommender {
    let manifest = Manifest::synthetic("prop", cfg);
    Recommender::from_bytes(&bundle::write(&manifest, w).unwrap()).unwrap()
}

fn config(max_len: usize) -> ModelConfig {
    let mut c = ModelConfig::sasrec(N);
    c.max_len = max_len;
    c.hidden = 16;
    c.n_heads = 2;
    c.mode = Mode::Corrected;
    c
}

/// The same weights at max_len 12 and 30 (the shorter keeps the first rows of the position table).
fn pair() -> &'static (Recommender, Recommender) {
    static P: OnceLock<(Recommender, Recommender)> = OnceLock::new();
    P.get_or_init(|| {
        let long = config(30);
        let w = random_weights(&long, 11).unwrap();
        let short = config(12);
        let mut ws = w.clone();
        ws.insert(
            "pos_emb.weight".into(),
            w["pos_emb.weight"].narrow(0, 0, 13).unwrap(),
        );
        (recommender(&short, &ws), recommender(&long, &w))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sorted_sized_and_exclusive(session in prop::collection::vec(1u32..=N as u32, 1..45), k in 1usize..50, exclude: bool) {
        let rec = &pair().0;
        let out = rec.recommend(&session, k, exclude).unwrap();
        let distinct: HashSet<u32> = session.iter().copied().collect();
        let available = if exclude { N - distinct.len() } else { N };
        prop_assert_eq!(out.len(), k.min(available));
        prop_assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
        let ids: HashSet<u32> = out.iter().map(|r| r.id).collect();
        prop_assert_eq!(ids.len(), out.len(), "no duplicates");
        if exclude {
            prop_assert!(out.iter().all(|r| !distinct.contains(&r.id)));
        }
    }

    #[test]
    fn corrected_mode_ignores_padding(session in prop::collection::vec(1u32..=N as u32, 1..=12)) {
        let (short, long) = pair();
        let a = short.scores(&session).unwrap();
        let b = long.scores(&session).unwrap();
        let max = a.iter().zip(&b).skip(1).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        prop_assert!(max < 1e-4, "max difference {}", max);
    }
}

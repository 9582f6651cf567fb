//! A bundle's text space: the serving-time text term adds, to candidates below its popularity cut
//! only, its weight times the largest cosine to the session's newest items (computed here from the
//! stored rows), changes nothing at weight 0, survives quantization of the tables, and a bundle
//! without a text space refuses text settings.

use llm_esr::bundle::{self, Manifest, Precision, TableType, TextBoost};
use llm_esr::model::init::random_weights;
use llm_esr::model::{Backbone, ModelConfig};
use llm_esr::recommend::Recommender;
use llm_esr::train::text_space::{self, TextInputs};

const N: usize = 60;
const DIM: usize = 48;

fn bundle_bytes(text: Option<TextBoost>, tables: TableType) -> Vec<u8> {
    let mut cfg = ModelConfig::reference(Backbone::Sasrec, N);
    cfg.max_len = 10;
    cfg.hidden = 32;
    let mut weights = random_weights(&cfg, 4).unwrap();
    let mut manifest = Manifest::synthetic("t", &cfg);
    if let Some(boost) = text {
        // Item i's vector leans on a few directions, so neighbouring ids have similar texts.
        let vectors: Vec<f32> = (0..N * DIM)
            .map(|j| {
                let (i, d) = ((j / DIM) as f32, (j % DIM) as f32);
                (0.3 * i + d).sin() + 0.1 * (d * 1.7).cos()
            })
            .collect();
        let (space, tensors) = text_space::build(&TextInputs {
            model: "test-model".into(),
            vectors: &vectors,
            dim: DIM,
            rows: cfg.item_rows(),
            width: 32,
            boost,
            new_items: None,
        })
        .unwrap();
        manifest.text = Some(space);
        weights.extend(tensors);
    }
    let precision = Precision {
        tables,
        ..Precision::default()
    };
    bundle::write_with(&manifest, &weights, precision).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn the_text_term_raises_only_candidates_below_the_cut_by_their_best_cosine() {
    // Synthetic popularity is the id: the cut 30 routes the term to items 1..=29.
    let boost = TextBoost {
        weight: 2.5,
        below_popularity: 30,
        recent: 2,
    };
    let session = [4u32, 40, 17];
    for tables in [TableType::F32, TableType::Q8] {
        let plain = Recommender::from_bytes(&bundle_bytes(None, tables)).unwrap();
        let off = Recommender::from_bytes(&bundle_bytes(
            Some(TextBoost {
                weight: 0.0,
                ..boost
            }),
            tables,
        ))
        .unwrap();
        let on = Recommender::from_bytes(&bundle_bytes(Some(boost), tables)).unwrap();
        let base = plain.scores(&session).unwrap();
        assert_eq!(
            off.scores(&session).unwrap(),
            base,
            "{tables}: weight 0 is off"
        );
        let boosted = on.scores(&session).unwrap();
        let text = on.engine().text().unwrap();
        let rows: Vec<Vec<f32>> = (0..=N as u32).map(|i| text.row(i)).collect();
        for id in 1..=N {
            let best = session[1..]
                .iter()
                .map(|&s| dot(&rows[id], &rows[s as usize]))
                .fold(f32::NEG_INFINITY, f32::max);
            let want = if id < 30 {
                base[id] + 2.5 * best
            } else {
                base[id]
            };
            assert!(
                (boosted[id] - want).abs() < 1e-4,
                "{tables} item {id}: {} vs {want}",
                boosted[id]
            );
        }
        // The recommendations follow the boosted scores.
        let top = on.recommend(&session, 5, true).unwrap();
        let mut order: Vec<usize> = (1..=N)
            .filter(|i| !session.contains(&(*i as u32)))
            .collect();
        order.sort_by(|&a, &b| boosted[b].total_cmp(&boosted[a]).then(a.cmp(&b)));
        assert_eq!(
            top.iter().map(|r| r.id as usize).collect::<Vec<_>>(),
            order[..5]
        );
    }
}

#[test]
fn text_settings_need_a_text_space_and_sane_values() {
    let mut plain = Recommender::from_bytes(&bundle_bytes(None, TableType::F32)).unwrap();
    let err = plain.set_text_boost(TextBoost::default()).unwrap_err();
    assert!(err.to_string().contains("no text space"), "{err}");
    let mut on =
        Recommender::from_bytes(&bundle_bytes(Some(TextBoost::default()), TableType::F32)).unwrap();
    for bad in [
        TextBoost {
            weight: f32::NAN,
            ..TextBoost::default()
        },
        TextBoost {
            recent: 0,
            ..TextBoost::default()
        },
    ] {
        assert!(on.set_text_boost(bad).is_err(), "{bad:?}");
    }
}

/// `llmesr eval` of a bundle that serves with a text term says so in every row it writes; one
/// without a term writes rows without one.
#[test]
fn eval_rows_name_the_text_term_the_bundle_serves_with() {
    let data = crate::common::synthetic_dir();
    for (weight, labelled) in [(1.5f32, true), (0.0, false)] {
        let boost = TextBoost {
            weight,
            below_popularity: 0,
            recent: 2,
        };
        let bundle = data.path().join(format!("text-{weight}.gguf"));
        std::fs::write(&bundle, bundle_bytes(Some(boost), TableType::F32)).unwrap();
        let report = data.path().join(format!("rows-{weight}.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmesr"))
            .args(["eval", "--bundle", bundle.to_str().unwrap(), "--data"])
            .arg(data.path())
            .args(["--protocol", "full", "--report", report.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert!(!rows.is_empty());
        for r in &rows {
            let ablation = r["ablation"].as_str().unwrap_or("");
            assert_eq!(ablation.contains("text-w1.5-b0-r2"), labelled, "{r}");
        }
    }
}

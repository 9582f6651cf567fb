//! New items from their text alone: placed in memory (`Recommender::add_items`, what the browser's
//! `addItems` runs) and written as a new bundle (`add_items_to_bundle`, what `llmesr add-items`
//! runs), both give the same scores; old items keep their ids and scores (BERT4Rec's mask row
//! moves behind the new items unchanged); a new item can be recommended; and every bad input is
//! refused with nothing half-added.

use candle_core::{Device, Tensor};
use llm_esr::bundle::{self, Manifest, NewItemId, NewItems, Precision, TableType, TextBoost};
use llm_esr::model::init::random_weights;
use llm_esr::model::{Backbone, ModelConfig, SemanticConfig};
use llm_esr::recommend::add_items::{add_items_to_bundle, NewItem};
use llm_esr::recommend::Recommender;
use llm_esr::train::text_space::{self, TextInputs};

const N: usize = 40;
const DIM: usize = 40;

fn vector(i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|d| (0.4 * i as f32 + d as f32).sin() + 0.05 * d as f32)
        .collect()
}

/// A bundle that can place new items: an LLM-ESR model (ID and semantic views) or a base one.
fn bundle_bytes(backbone: Backbone, llmesr: bool, tables: TableType) -> Vec<u8> {
    let mut cfg = ModelConfig::reference(backbone, N);
    cfg.max_len = 8;
    cfg.hidden = 32;
    if llmesr {
        let mut s = SemanticConfig::reference(32);
        s.folded = true;
        cfg.semantic = Some(s);
    }
    let mut weights = random_weights(&cfg, 9).unwrap();
    let vectors: Vec<f32> = (1..=N).flat_map(vector).collect();
    let (space, text) = text_space::build(&TextInputs {
        model: "test-model".into(),
        vectors: &vectors,
        dim: DIM,
        rows: cfg.item_rows(),
        width: 32,
        boost: TextBoost::default(),
        new_items: Some(NewItems {
            id: NewItemId::Ridge,
            noun: "movie".into(),
        }),
    })
    .unwrap();
    weights.extend(text);
    let map = |name: &str, seed: f32| {
        let w: Vec<f32> = (0..32 * DIM)
            .map(|i| ((i as f32 * seed).sin()) * 0.2)
            .collect();
        [
            (
                format!("{name}.weight"),
                Tensor::from_vec(w, (32, DIM), &Device::Cpu).unwrap(),
            ),
            (
                format!("{name}.bias"),
                Tensor::from_vec(vec![0.01f32; 32], 32, &Device::Cpu).unwrap(),
            ),
        ]
    };
    weights.extend(map("id_map", 0.7));
    if llmesr {
        weights.extend(map("sem_map", 1.3));
    }
    let mut manifest = Manifest::synthetic("t", &cfg);
    manifest.text = Some(space);
    let precision = Precision {
        tables,
        ..Precision::default()
    };
    bundle::write_with(&manifest, &weights, precision).unwrap()
}

fn new_items() -> Vec<NewItem> {
    (0..3)
        .map(|j| NewItem {
            key: format!("new-{j}"),
            title: format!("New movie {j}"),
            vector: vector(100 + j),
        })
        .collect()
}

#[test]
fn new_items_placed_in_memory_and_written_answer_alike_and_old_items_keep_theirs() {
    let session = [3u32, 17, 8];
    for (backbone, llmesr) in [
        (Backbone::Sasrec, true),
        (Backbone::Sasrec, false),
        (Backbone::Bert4rec, true),
        (Backbone::Gru4rec, true),
    ] {
        for tables in [TableType::F32, TableType::Q8, TableType::Q4] {
            let bytes = bundle_bytes(backbone, llmesr, tables);
            let case = format!("{backbone:?} llmesr={llmesr} {tables}");
            let before = Recommender::from_bytes(&bytes).unwrap();
            let old = before.scores(&session).unwrap();
            let mut memory = Recommender::from_bytes(&bytes).unwrap();
            let ids = memory.add_items(&new_items()).unwrap();
            assert_eq!(ids, vec![41, 42, 43], "{case}");
            assert_eq!(memory.n_items(), N + 3);
            let written =
                Recommender::from_bytes(&add_items_to_bundle(&bytes, &new_items()).unwrap())
                    .unwrap();
            let (a, b) = (
                memory.scores(&session).unwrap(),
                written.scores(&session).unwrap(),
            );
            assert_eq!(a.len(), N + 4);
            for i in 1..=N + 3 {
                assert!(
                    (a[i] - b[i]).abs() < 1e-5,
                    "{case} item {i}: {} vs {}",
                    a[i],
                    b[i]
                );
            }
            for i in 1..=N {
                assert!((a[i] - old[i]).abs() < 1e-5, "{case}: old item {i} moved");
            }
            // Sessions may hold new items, and new items come back as recommendations.
            assert!(memory.scores(&[42, 3]).is_ok(), "{case}");
            assert!(written.item(43).unwrap().new && !written.item(3).unwrap().new);
            let all = memory.recommend(&session, N + 3, true).unwrap();
            assert!(all.iter().any(|r| r.id > N as u32), "{case}");
        }
    }
}

#[test]
fn bad_new_items_are_refused_and_nothing_is_half_added() {
    let bytes = bundle_bytes(Backbone::Sasrec, true, TableType::F32);
    let mut rec = Recommender::from_bytes(&bytes).unwrap();
    let item = |key: &str, vector: Vec<f32>| NewItem {
        key: key.into(),
        title: "t".into(),
        vector,
    };
    let mut nan = vector(1);
    nan[5] = f32::NAN;
    for (items, needle) in [
        (vec![], "no items"),
        (
            vec![item("a", vector(1)), item("a", vector(2))],
            "given twice",
        ),
        (
            vec![item("b", vector(1)), item("3", vector(2))],
            "already has this key",
        ),
        (
            vec![item("c", vec![0.5; DIM - 1])],
            "the vector has 39 values",
        ),
        (vec![item("d", nan)], "value 5 of the vector is NaN"),
        (vec![item(" ", vector(1))], "the key is empty"),
    ] {
        let err = rec.add_items(&items).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        assert!(add_items_to_bundle(&bytes, &items)
            .unwrap_err()
            .to_string()
            .contains(needle));
        assert_eq!(rec.n_items(), N, "nothing added after: {err}");
    }
    let mut cfg = ModelConfig::sasrec(N);
    cfg.hidden = 32;
    let plain = bundle::write(
        &Manifest::synthetic("p", &cfg),
        &random_weights(&cfg, 1).unwrap(),
    )
    .unwrap();
    let err = Recommender::from_bytes(&plain)
        .unwrap()
        .add_items(&new_items())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no text space"), "{err}");
}

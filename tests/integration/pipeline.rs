//! End-to-end on data the test generates: read `inter.txt`, train, evaluate against the
//! most-popular floor, export a bundle, load it back and check it answers exactly as the model does.

use llm_esr::bundle::{self, Bundle, Manifest};
use llm_esr::data::{Dataset, Groups, Stage};
use llm_esr::eval::{evaluate, MostPopular, Protocol, Scorer};
use llm_esr::model::{Mode, ModelConfig};
use llm_esr::recommend::Recommender;
use llm_esr::train::{train, RunRecord, TrainConfig, TrainInputs};

use crate::common::fixture;

fn manifest(dataset: &Dataset, groups: &Groups, model: &ModelConfig) -> Manifest {
    Manifest {
        name: "test".into(),
        dataset: dataset.name.clone(),
        model: model.clone(),
        items: RunRecord::items_of(dataset, groups),
        item_tail_cut: groups.item_cut,
        text: None,
        run: None,
    }
}

fn small_config(n_items: usize, mode: Mode) -> ModelConfig {
    let mut m = ModelConfig::sasrec(n_items);
    m.mode = mode;
    m.max_len = 20;
    m.hidden = 32;
    m.n_heads = 2;
    m.dropout = 0.1;
    m
}

#[test]
fn trains_beats_popularity_exports_and_reloads() {
    let (dir, dataset, groups) = fixture();
    let model_cfg = small_config(dataset.n_items(), Mode::Corrected);
    let cfg = TrainConfig {
        epochs: 30,
        batch_size: 32,
        lr: 5e-3,
        patience: 5,
        seed: 1,
        eval_batch_size: 64,
        ..TrainConfig::default()
    };
    let run_dir = dir.path().join("run");
    let ckpt = run_dir.join("checkpoint.safetensors");
    let (model, weights, outcome) = train(&TrainInputs {
        data: &dataset,
        groups: &groups,
        model: &model_cfg,
        train: &cfg,
        semantic: None,
        run_dir: &run_dir,
        progress: false,
        resume: false,
    })
    .unwrap();
    assert!(ckpt.is_file(), "best checkpoint written");

    let ndcg = |s: &dyn Scorer| {
        evaluate(s, &dataset, &groups, Stage::Test, Protocol::Full, 0, 64)
            .unwrap()
            .group("overall")
            .mean("ndcg@10")
    };
    let ours = ndcg(&model);
    let pop = ndcg(&MostPopular::fit(&dataset));
    assert!(
        ours > pop + 0.2,
        "SASRec {ours:.4} vs most-popular {pop:.4}"
    );
    assert!(outcome.best_valid_ndcg10 > 0.0);

    // Export and reload: the bundle must answer exactly as the in-memory model does.
    let bytes = bundle::write(&manifest(&dataset, &groups, &model_cfg), &weights).unwrap();
    let rec = Recommender::from_bytes(&bytes).unwrap();
    let session = [3u32, 4, 5];
    let direct = model.score(&[&session]).unwrap().remove(0);
    let via_bundle = rec.scores(&session).unwrap();
    for (a, b) in direct.iter().zip(&via_bundle).skip(1) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let top = rec.recommend(&session, 5, true).unwrap();
    assert_eq!(top.len(), 5);
    assert!(top.iter().all(|r| !session.contains(&r.id)));
    assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        top[0].title.starts_with("Movie <b>"),
        "titles stay literal text"
    );
    // The ring pattern: after i3 (id of the key "i…" may differ) the next item is its successor.
    let last_key = &rec.item(5).unwrap().key;
    let next_key = format!("i{}", last_key[1..].parse::<u32>().unwrap() % 60 + 1);
    assert_eq!(top[0].key, next_key, "top recommendation follows the ring");
}

#[test]
fn bundle_corruption_and_bad_requests_are_clear_errors() {
    let (dir, dataset, groups) = fixture();
    let model_cfg = small_config(dataset.n_items(), Mode::Faithful);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 64,
        seed: 2,
        ..TrainConfig::default()
    };
    let (_, weights, _) = train(&TrainInputs {
        data: &dataset,
        groups: &groups,
        model: &model_cfg,
        train: &cfg,
        semantic: None,
        run_dir: &dir.path().join("c"),
        progress: false,
        resume: false,
    })
    .unwrap();
    let manifest = manifest(&dataset, &groups, &model_cfg);
    let bytes = bundle::write(&manifest, &weights).unwrap();
    let err = |b: &[u8]| {
        Recommender::from_bytes(b)
            .err()
            .expect("must fail")
            .to_string()
    };

    let mut flipped = bytes.clone();
    let at = bytes.len() * 3 / 4;
    flipped[at] ^= 0x55;
    assert!(
        err(&flipped).contains("checksum mismatch"),
        "{}",
        err(&flipped)
    );
    assert!(err(&bytes[..bytes.len() / 2]).starts_with("bundle:"));
    assert!(err(b"<html>404</html>").contains("GGUF magic"));
    assert!(err(&[]).contains("GGUF magic"));

    // A bundle missing a tensor names it.
    let mut partial = weights.clone();
    partial.remove("ln_last.weight");
    let b = bundle::write(&manifest.clone(), &partial).unwrap();
    assert!(err(&b).contains("ln_last.weight"), "{}", err(&b));

    // An extra tensor the model does not use is refused, not ignored.
    let mut extra = weights.clone();
    extra.insert(
        "blocks.7.attn.q.weight".into(),
        weights["ln_last.weight"].clone(),
    );
    let b = bundle::write(&manifest, &extra).unwrap();
    assert!(
        err(&b).contains("unexpected tensor blocks.7.attn.q.weight"),
        "{}",
        err(&b)
    );

    // Inconsistent manifest.
    let mut m = manifest.clone();
    m.items.pop();
    assert!(bundle::write(&m, &weights)
        .unwrap_err()
        .to_string()
        .contains("items"));

    let ok = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(ok.manifest.items.len(), dataset.n_items());
    let rec = Recommender::from_bundle(ok).unwrap();
    let n = rec.n_items() as u32;
    assert!(rec
        .recommend(&[], 5, true)
        .unwrap_err()
        .to_string()
        .contains("empty session"));
    assert!(rec
        .recommend(&[n + 1], 5, true)
        .unwrap_err()
        .to_string()
        .contains(&format!("unknown item id {}", n + 1)));
    assert!(rec
        .recommend(&[0], 5, true)
        .unwrap_err()
        .to_string()
        .contains("unknown item id 0"));
    assert!(rec
        .recommend(&[1], 0, true)
        .unwrap_err()
        .to_string()
        .contains("k must be at least 1"));
    assert_eq!(
        rec.recommend(&[1, 2], 1000, true).unwrap().len(),
        n as usize - 2
    );
    assert_eq!(
        rec.recommend(&[1, 2], 1000, false).unwrap().len(),
        n as usize
    );
    let long: Vec<u32> = (0..500).map(|i| i % n + 1).collect();
    assert_eq!(rec.recommend(&long, 3, false).unwrap().len(), 3);
}

#[test]
fn same_seed_same_weights() {
    let (dir, dataset, groups) = fixture();
    let model_cfg = small_config(dataset.n_items(), Mode::Corrected);
    let run = |seed: u64| {
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 64,
            seed,
            ..TrainConfig::default()
        };
        let (_, w, o) = train(&TrainInputs {
            data: &dataset,
            groups: &groups,
            model: &model_cfg,
            train: &cfg,
            semantic: None,
            run_dir: &dir.path().join(format!("s{seed}")),
            progress: false,
            resume: false,
        })
        .unwrap();
        (
            w["item_emb.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            o.epochs[0].loss,
        )
    };
    let (a, la) = run(9);
    let (b, lb) = run(9);
    let (c, _) = run(10);
    assert_eq!(la, lb);
    assert_eq!(a, b, "same seed, same weights");
    assert_ne!(a, c, "another seed, other weights");
}

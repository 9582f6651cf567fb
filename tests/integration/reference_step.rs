//! One LLM-ESR training step per backbone against the reference's own PyTorch code: the same random
//! weights, batch, negatives and similar users give the same loss and the same gradient for every
//! parameter. The fixtures (`tests/fixtures/reference-step-<backbone>.json`, a 30-item random model,
//! nothing from MovieLens) are written by `scripts/reference-step.py` from a checkout of the
//! reference; CI only reads them. Dropout is 0 in both so the step is deterministic.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use llm_esr::data::split::pad_left;
use llm_esr::data::Dataset;
use llm_esr::model::{Backbone, Mode, ModelConfig, SemanticConfig, SeqRec, Visibility};
use llm_esr::train::distill::Distiller;
use llm_esr::train::sampler::{user_input, TrainBatch};
use llm_esr::train::{step_loss, Distill, LossConfig, Teacher};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f32>,
}

#[derive(Deserialize)]
struct Fixture {
    backbone: Backbone,
    n_items: usize,
    hidden: usize,
    max_len: usize,
    llm_dim: usize,
    alpha: f64,
    n_similar: usize,
    sequences: Vec<Vec<u32>>,
    similar: Vec<Vec<u32>>,
    batch_users: Vec<usize>,
    inputs: Vec<Vec<u32>>,
    positives: Vec<u32>,
    negatives: Vec<u32>,
    loss: f32,
    weights: HashMap<String, Array>,
    grads: HashMap<String, Array>,
}

const BACKBONES: [&str; 3] = ["sasrec", "gru4rec", "bert4rec"];

fn fixture(backbone: &str) -> Fixture {
    let path = format!(
        "{}/tests/fixtures/reference-step-{backbone}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture present"))
        .expect("fixture parses")
}

fn config(f: &Fixture) -> ModelConfig {
    let mut cfg = ModelConfig::reference(f.backbone, f.n_items);
    cfg.mode = Mode::Faithful;
    cfg.hidden = f.hidden;
    cfg.max_len = f.max_len;
    cfg.dropout = 0.0;
    cfg.semantic = Some(SemanticConfig::reference(f.llm_dim));
    cfg
}

/// The model with the fixture's weights; every variable must be in the fixture.
fn model(f: &Fixture, cfg: &ModelConfig) -> (VarMap, SeqRec) {
    let vars = VarMap::new();
    let m = SeqRec::new(
        cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )
    .unwrap();
    for (name, var) in vars.data().lock().unwrap().iter() {
        let a = f
            .weights
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the fixture"));
        assert_eq!(var.dims(), a.shape.as_slice(), "{name}");
        var.set(&Tensor::from_vec(a.data.clone(), a.shape.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    }
    (vars, m)
}

fn dataset(f: &Fixture) -> Dataset {
    Dataset {
        name: "fixture".into(),
        item_keys: (0..=f.n_items).map(|i| i.to_string()).collect(),
        item_titles: (0..=f.n_items).map(|i| i.to_string()).collect(),
        user_keys: (0..f.sequences.len()).map(|u| u.to_string()).collect(),
        sequences: f.sequences.clone(),
    }
}

/// Loss and gradients of our step on the fixture's batch, with `weights` edited first.
fn our_step(f: &Fixture, edit: impl Fn(&mut Fixture)) -> (f32, HashMap<String, Vec<f32>>) {
    let mut f2 = fixture(f.backbone.label());
    edit(&mut f2);
    let cfg = config(f);
    let (vars, m) = model(&f2, &cfg);
    let data = dataset(f);
    if f.backbone != Backbone::Bert4rec {
        // The reference's input is ours: the training part without its last item, newest kept.
        for (&u, input) in f.batch_users.iter().zip(&f.inputs) {
            assert_eq!(&pad_left(user_input(&data, u), f.max_len), input);
        }
    }
    let host = TrainBatch {
        inputs: f.inputs.clone(),
        positives: f.positives.clone(),
        negatives: f.negatives.clone(),
        lead: 1,
    };
    let distiller = Distiller::new(&data, &f.similar, f.n_similar, Teacher::Fresh).unwrap();
    let distill = Distill {
        distiller: &distiller,
        data: &data,
        users: &f.batch_users,
        weight: f.alpha,
    };
    let mut rng = SmallRng::seed_from_u64(0);
    let step = step_loss(
        &m,
        host,
        Visibility::of(&cfg),
        &LossConfig::default(),
        None,
        Some(distill),
        &mut rng,
    )
    .unwrap();
    let grads = step.loss.backward().unwrap();
    let out = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(name, var)| {
            let g = grads.get(var.as_tensor())?;
            Some((
                name.clone(),
                g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            ))
        })
        .collect();
    (step.loss.to_scalar::<f32>().unwrap(), out)
}

#[test]
fn a_training_step_matches_the_reference_loss_and_every_gradient() {
    for backbone in BACKBONES {
        matches_the_reference(&fixture(backbone));
    }
}

fn matches_the_reference(f: &Fixture) {
    let (loss, grads) = our_step(f, |_| {});
    let b = f.backbone;
    assert!(
        (loss - f.loss).abs() < 1e-5 * f.loss.abs().max(1.0),
        "{b:?}: loss {loss}, reference {}",
        f.loss
    );
    let mut worst = 0f32;
    for (name, want) in &f.grads {
        // The frozen language-model table has no gradient in either.
        let got = grads
            .get(name)
            .unwrap_or_else(|| panic!("{b:?}: no gradient for {name}"));
        let scale = want.data.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3);
        let diff = got
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max(diff / scale);
        assert!(
            diff < 1e-4 * scale,
            "{b:?} {name}: gradient differs by {diff} (largest reference entry {scale})"
        );
    }
    eprintln!(
        "{b:?}: loss {loss} (reference {}); {} gradients, worst difference {worst:.1e} of the largest entry",
        f.loss,
        f.grads.len()
    );
    let mut trained: Vec<&String> = grads.keys().collect();
    trained.retain(|k| !f.grads.contains_key(*k));
    assert!(
        trained.is_empty(),
        "{b:?}: gradients the reference does not have: {trained:?}"
    );
}

#[test]
fn the_fixture_comparison_notices_a_changed_weight() {
    // The check must be able to fail: one cross-attention value weight nudged changes the loss.
    for backbone in BACKBONES {
        let f = fixture(backbone);
        let (loss, _) = our_step(&f, |g| {
            let w = g.weights.get_mut("id2llm.v.weight").unwrap();
            w.data[0] += 0.05;
        });
        assert!(
            (loss - f.loss).abs() > 1e-5,
            "{backbone}: loss {loss} did not move"
        );
    }
}

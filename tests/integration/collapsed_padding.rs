//! Paper-faithful SASRec and BERT4Rec let padding keys into the self-attention, so a batch cannot
//! drop its padding; it can collapse the padding that every row shares into one key weighted by
//! its count. These tests hold that to the fully padded batch: the same representations, loss and
//! gradients, in both variants.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use llm_esr::data::split::pad_left;
use llm_esr::model::init::seeded_init;
use llm_esr::model::{
    Backbone, Mode, ModelConfig, Padding, SemanticConfig, SeqBatch, SeqRec, Visibility,
};
use llm_esr::train::sampler::TrainBatch;
use llm_esr::train::{step_loss, LossConfig};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const MAX_LEN: usize = 12;

fn faithful(backbone: Backbone, llmesr: bool, dropout: f32) -> ModelConfig {
    let mut cfg = ModelConfig::reference(backbone, 20);
    cfg.max_len = MAX_LEN;
    cfg.hidden = 16;
    cfg.n_heads = 2;
    cfg.mode = Mode::Faithful;
    cfg.dropout = dropout;
    if llmesr {
        cfg.semantic = Some(SemanticConfig::reference(12));
    }
    cfg
}

fn model(cfg: &ModelConfig) -> (VarMap, SeqRec) {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let m = SeqRec::new(cfg, vb).unwrap();
    seeded_init(&vars, 11).unwrap();
    (vars, m)
}

/// Three histories of different lengths, every one shorter than the window.
fn histories() -> Vec<Vec<u32>> {
    vec![
        vec![3, 4, 5, 6, 7],
        vec![8, 1, 2],
        vec![9, 10, 11, 12, 13, 14, 2],
    ]
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn configs(dropout: f32) -> Vec<ModelConfig> {
    let mut out = Vec::new();
    for backbone in [Backbone::Sasrec, Backbone::Bert4rec] {
        for llmesr in [false, true] {
            out.push(faithful(backbone, llmesr, dropout));
        }
    }
    out
}

#[test]
fn collapsed_padding_gives_the_fully_padded_representations() {
    for cfg in configs(0.5) {
        let (_, m) = model(&cfg);
        let tables = m.item_tables().unwrap();
        let full: Vec<Vec<u32>> = histories().iter().map(|h| pad_left(h, MAX_LEN)).collect();
        let padded = SeqBatch::new(&full, Visibility::of(&cfg), &Device::Cpu).unwrap();
        let mut fitted = full.clone();
        let lead = Padding::of(&cfg).fit(&mut fitted);
        // The longest history has 7 items: 5 shared padding columns become 1 standing for 5.
        assert_eq!((lead, fitted[0].len()), (5, MAX_LEN - 4), "{cfg:?}");
        let collapsed = SeqBatch::new(&fitted, Visibility::of(&cfg), &Device::Cpu)
            .unwrap()
            .collapsed(lead)
            .unwrap();
        let a = m.user_repr(&tables, &padded, None).unwrap();
        let b = m.user_repr(&tables, &collapsed, None).unwrap();
        assert!(
            max_diff(&a, &b) < 1e-5,
            "{:?} {}",
            cfg.backbone,
            cfg.variant()
        );
        // Ignoring the count is not the same model: padding weighs in faithful mode.
        let uncounted = SeqBatch::new(&fitted, Visibility::of(&cfg), &Device::Cpu).unwrap();
        let c = m.user_repr(&tables, &uncounted, None).unwrap();
        assert!(
            max_diff(&a, &c) > 1e-4,
            "{:?} {}",
            cfg.backbone,
            cfg.variant()
        );
        // The inference path collapses the same way.
        let inputs: Vec<Vec<u32>> = histories();
        let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        if cfg.backbone == Backbone::Sasrec {
            let batch = m.inference_batch(&refs, &Device::Cpu).unwrap();
            assert_eq!(batch.len, MAX_LEN - 4);
            let d = max_diff(&m.user_repr(&tables, &batch, None).unwrap(), &a);
            assert!(d < 1e-5, "{}: {d}", cfg.variant());
        }
    }
}

/// The seq-to-seq (SASRec) or cloze (BERT4Rec) loss of one fixed batch and the gradient of every
/// parameter, from the fully padded inputs and from the collapsed ones. Without dropout the two
/// must agree; with it they agree in distribution only (the kernels' tests cover that).
#[test]
fn collapsed_padding_gives_the_fully_padded_loss_and_gradients() {
    for cfg in configs(0.0) {
        let (vars, m) = model(&cfg);
        let full: Vec<Vec<u32>> = histories().iter().map(|h| pad_left(h, MAX_LEN)).collect();
        let mask = cfg.mask_token();
        // Targets at every item position (a BERT4Rec sample masks some of them).
        let mut inputs = full.clone();
        let mut positives = Vec::new();
        for row in inputs.iter_mut() {
            for (j, x) in row.iter_mut().enumerate() {
                let target = if *x == 0 { 0 } else { 1 + (*x + 2) % 20 };
                positives.push(target);
                if let (Some(t), true) = (mask, j % 3 == 0 && *x != 0) {
                    *x = t;
                }
            }
        }
        let negatives: Vec<u32> = positives
            .iter()
            .map(|&p| if p == 0 { 0 } else { 1 + p % 20 })
            .collect();
        let host = TrainBatch {
            inputs: inputs.clone(),
            positives: positives.clone(),
            negatives: negatives.clone(),
            lead: 1,
        };
        let mut collapsed = TrainBatch {
            inputs,
            positives,
            negatives,
            lead: 1,
        };
        collapsed.fit_padding(Padding::of(&cfg));
        assert_eq!(collapsed.lead, 5, "{cfg:?}");
        assert_eq!(collapsed.positives.len(), 3 * (MAX_LEN - 4));
        let visibility = Visibility::of(&cfg);
        let mut rng = SmallRng::seed_from_u64(0);
        let a = step_loss(
            &m,
            host,
            visibility,
            &LossConfig::default(),
            None,
            None,
            &mut rng,
        )
        .unwrap();
        let b = step_loss(
            &m,
            collapsed,
            visibility,
            &LossConfig::default(),
            None,
            None,
            &mut rng,
        )
        .unwrap();
        let case = format!("{:?} {}", cfg.backbone, cfg.variant());
        let (la, lb) = (
            a.loss.to_scalar::<f32>().unwrap(),
            b.loss.to_scalar::<f32>().unwrap(),
        );
        assert!((la - lb).abs() < 1e-5, "{case}: loss {la} vs {lb}");
        let (ga, gb) = (a.loss.backward().unwrap(), b.loss.backward().unwrap());
        let data = vars.data().lock().unwrap();
        let mut compared = 0;
        for (name, var) in data.iter() {
            let (Some(x), Some(y)) = (ga.get(var.as_tensor()), gb.get(var.as_tensor())) else {
                assert!(
                    ga.get(var.as_tensor()).is_none() && gb.get(var.as_tensor()).is_none(),
                    "{case}: {name} has a gradient in one batch only"
                );
                continue;
            };
            let scale = x
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let d = max_diff(x, y);
            assert!(d <= 1e-4 * scale.max(1.0), "{case}: d{name} differs by {d}");
            compared += 1;
        }
        // The attention's key and value biases get gradient only through the padding keys' count.
        assert!(compared > 10, "{case}: {compared} gradients compared");
    }
}

//! LLM-ESR end to end on generated data: all six (backbone, variant) pairs train, beat the
//! most-popular floor, export with the semantic view folded, and the bundle answers as the unfolded
//! model does; self-distillation measurably pulls users toward their similar users.

use candle_core::{Device, Tensor};
use llm_esr::bundle::{self, Manifest};
use llm_esr::data::{Dataset, Groups, Stage};
use llm_esr::eval::{evaluate, MostPopular, Protocol, Scorer};
use llm_esr::model::init::snapshot;
use llm_esr::model::{Backbone, ModelConfig, SemanticConfig, SeqRec};
use llm_esr::recommend::Recommender;
use llm_esr::semantic::similar::most_similar;
use llm_esr::train::export::fold_semantic;
use llm_esr::train::sampler::user_input;
use llm_esr::train::{
    train, LossConfig, LossKind, RunRecord, SemanticInputs, Teacher, TrainConfig, TrainInputs,
};

use crate::common::{fixture, RING};

const DIM: usize = 40;

/// A "language-model" table for the ring: neighbouring items get similar vectors, as titles of
/// related movies would.
fn semantic_inputs(data: &Dataset) -> SemanticInputs {
    let mut items = Vec::with_capacity(data.n_items() * DIM);
    for key in &data.item_keys[1..] {
        let k: f32 = key[1..].parse().unwrap();
        let theta = std::f32::consts::TAU * k / RING as f32;
        for h in 0..DIM / 2 {
            let f = (h + 1) as f32;
            items.extend([(f * theta).cos() / f, (f * theta).sin() / f]);
        }
    }
    // Users as the mean of their training items (the cheap alternative to history text).
    let mut users = vec![0f32; data.n_users() * DIM];
    for (u, seq) in data.sequences.iter().enumerate() {
        let train = llm_esr::data::split::train_part(seq);
        for &i in train {
            for d in 0..DIM {
                users[u * DIM + d] += items[(i as usize - 1) * DIM + d] / train.len() as f32;
            }
        }
    }
    SemanticInputs {
        items: Tensor::from_vec(items, (data.n_items(), DIM), &Device::Cpu).unwrap(),
        similar: most_similar(&users, data.n_users(), DIM, 20).unwrap(),
        fingerprint: "ring".into(),
    }
}

fn config(n_items: usize, backbone: Backbone, llmesr: bool) -> ModelConfig {
    let mut m = ModelConfig::reference(backbone, n_items);
    m.max_len = 20;
    m.hidden = 32;
    m.n_heads = 2;
    m.dropout = 0.1;
    if llmesr {
        m.semantic = Some(SemanticConfig::reference(DIM));
    }
    m
}

fn ndcg(s: &dyn Scorer, data: &Dataset, groups: &Groups) -> f64 {
    evaluate(s, data, groups, Stage::Test, Protocol::Full, 0, 64)
        .unwrap()
        .group("overall")
        .mean("ndcg@10")
}

#[test]
fn six_variants_train_fold_and_answer_like_the_model() {
    let (dir, dataset, groups) = fixture();
    let sem = semantic_inputs(&dataset);
    let pop = ndcg(&MostPopular::fit(&dataset), &dataset, &groups);
    for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
        for llmesr in [false, true] {
            let model_cfg = config(dataset.n_items(), backbone, llmesr);
            let cfg = TrainConfig {
                epochs: 12,
                batch_size: 32,
                lr: 5e-3,
                patience: 4,
                seed: 1,
                eval_batch_size: 64,
                teacher: Teacher::Fresh,
                ..TrainConfig::default()
            };
            let run_dir = dir.path().join(format!("{backbone:?}-{llmesr}"));
            let (model, weights, _) = train(&TrainInputs {
                data: &dataset,
                groups: &groups,
                model: &model_cfg,
                train: &cfg,
                semantic: llmesr.then_some(&sem),
                run_dir: &run_dir,
                progress: false,
                resume: false,
            })
            .unwrap();
            let ours = ndcg(&model, &dataset, &groups);
            assert!(
                ours > pop + 0.1,
                "{backbone:?} llmesr={llmesr}: {ours:.4} vs most-popular {pop:.4}"
            );
            let (folded_cfg, folded) = fold_semantic(&model_cfg, &weights).unwrap();
            assert!(folded
                .keys()
                .all(|k| !k.starts_with("llm_emb") && !k.starts_with("adapter")));
            let manifest = Manifest {
                name: "t".into(),
                dataset: dataset.name.clone(),
                model: folded_cfg,
                items: RunRecord::items_of(&dataset, &groups),
                item_tail_cut: groups.item_cut,
                text: None,
                run: None,
            };
            let rec = Recommender::from_bytes(&bundle::write(&manifest, &folded).unwrap()).unwrap();
            for session in [&[3u32, 4, 5][..], &[7], &(1..=30).collect::<Vec<u32>>()] {
                let direct = model.score(&[session]).unwrap().remove(0);
                let via_bundle = rec.scores(session).unwrap();
                let diff = direct
                    .iter()
                    .zip(&via_bundle)
                    .skip(1)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-4, "{backbone:?} llmesr={llmesr}: {diff}");
            }
            // The views diagnostic ranks with both views as the evaluation does, and with each
            // view's part of the score alone.
            let views = llm_esr::eval::views::view_report(&rec, &dataset, Stage::Test).unwrap();
            let names: Vec<&str> = views.iter().map(|r| r.views.as_str()).collect();
            let expected: &[&str] = if llmesr {
                &["both", "collaborative", "semantic"]
            } else {
                &["collaborative"]
            };
            assert_eq!(names, expected);
            assert!(
                (views[0].ndcg10 - ours).abs() < 1e-3,
                "{backbone:?} llmesr={llmesr}: views {} vs evaluation {ours}",
                views[0].ndcg10
            );
        }
    }
}

/// Mean squared distance between each user's representation and the mean of its similar users'.
/// Every softmax-family loss trains all six (backbone, variant) pairs past the most-popular floor,
/// self-distillation included for LLM-ESR.
#[test]
fn softmax_family_losses_train_every_variant() {
    let (dir, dataset, groups) = fixture();
    let sem = semantic_inputs(&dataset);
    let pop = ndcg(&MostPopular::fit(&dataset), &dataset, &groups);
    for kind in [LossKind::Ce, LossKind::Sampled, LossKind::Gbce] {
        for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
            for llmesr in [false, true] {
                let cfg = TrainConfig {
                    // gBCE sits on a plateau for several epochs on this small ring before it learns, so
                    // these runs are longer and faster than the BCE ones.
                    epochs: 30,
                    batch_size: 32,
                    lr: 1e-2,
                    patience: 10,
                    seed: 2,
                    eval_batch_size: 64,
                    teacher: Teacher::Cached,
                    loss: LossConfig {
                        kind,
                        negatives: 16,
                        logq: kind == LossKind::Sampled,
                        ..LossConfig::default()
                    },
                    ..TrainConfig::default()
                };
                let run_dir = dir.path().join(format!("{kind:?}-{backbone:?}-{llmesr}"));
                let (model, _, outcome) = train(&TrainInputs {
                    data: &dataset,
                    groups: &groups,
                    model: &config(dataset.n_items(), backbone, llmesr),
                    train: &cfg,
                    semantic: llmesr.then_some(&sem),
                    run_dir: &run_dir,
                    progress: false,
                    resume: false,
                })
                .unwrap();
                let first = outcome.epochs[0].loss;
                let last = outcome.epochs.last().unwrap().loss;
                assert!(
                    last < first,
                    "{kind:?} {backbone:?} llmesr={llmesr}: loss {first} -> {last}"
                );
                let ours = ndcg(&model, &dataset, &groups);
                assert!(
                    ours > pop + 0.1,
                    "{kind:?} {backbone:?} llmesr={llmesr}: {ours:.4} vs most-popular {pop:.4}"
                );
            }
        }
    }
}

fn distance_to_teachers(model: &SeqRec, data: &Dataset, sem: &SemanticInputs) -> f32 {
    let tables = model.item_tables().unwrap();
    let inputs: Vec<&[u32]> = (0..data.n_users()).map(|u| user_input(data, u)).collect();
    let batch = model.inference_batch(&inputs, &Device::Cpu).unwrap();
    let reps: Vec<Vec<f32>> = model
        .user_repr(&tables, &batch, None)
        .unwrap()
        .to_vec2()
        .unwrap();
    let mut total = 0f32;
    for (u, r) in reps.iter().enumerate() {
        let sims = &sem.similar[u][..10];
        for (d, x) in r.iter().enumerate() {
            let mean: f32 = sims.iter().map(|&v| reps[v as usize][d]).sum::<f32>() / 10.0;
            total += (x - mean).powi(2);
        }
    }
    total / reps.len() as f32
}

#[test]
fn self_distillation_pulls_users_toward_similar_users() {
    for backbone in [Backbone::Sasrec, Backbone::Bert4rec] {
        distillation_pulls(backbone);
    }
}

fn distillation_pulls(backbone: Backbone) {
    let (dir, dataset, groups) = fixture();
    let sem = semantic_inputs(&dataset);
    let model_cfg = config(dataset.n_items(), backbone, true);
    let mut dist = Vec::new();
    for (weight, teacher) in [
        (0.0, Teacher::Fresh),
        (5.0, Teacher::Fresh),
        (5.0, Teacher::Cached),
    ] {
        let cfg = TrainConfig {
            epochs: 6,
            batch_size: 32,
            lr: 5e-3,
            patience: 6,
            seed: 4,
            distill_weight: weight,
            teacher,
            ..TrainConfig::default()
        };
        let (model, _, _) = train(&TrainInputs {
            data: &dataset,
            groups: &groups,
            model: &model_cfg,
            train: &cfg,
            semantic: Some(&sem),
            run_dir: &dir.path().join(format!("sd-{weight}-{teacher:?}")),
            progress: false,
            resume: false,
        })
        .unwrap();
        dist.push(distance_to_teachers(&model, &dataset, &sem));
    }
    assert!(
        dist[1] < 0.7 * dist[0],
        "{backbone:?}, fresh teacher: {dist:?}"
    );
    assert!(
        dist[2] < 0.7 * dist[0],
        "{backbone:?}, cached teacher: {dist:?}"
    );
}

#[test]
fn llmesr_without_semantic_inputs_or_with_wrong_width_is_refused() {
    let (dir, dataset, groups) = fixture();
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let model_cfg = config(dataset.n_items(), Backbone::Sasrec, true);
    let err = train(&TrainInputs {
        data: &dataset,
        groups: &groups,
        model: &model_cfg,
        train: &cfg,
        semantic: None,
        run_dir: dir.path(),
        progress: false,
        resume: false,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("semantic"), "{err}");
    let mut wide = config(dataset.n_items(), Backbone::Sasrec, true);
    wide.semantic.as_mut().unwrap().input_dim = DIM + 1;
    let sem = semantic_inputs(&dataset);
    let err = train(&TrainInputs {
        data: &dataset,
        groups: &groups,
        model: &wide,
        train: &cfg,
        semantic: Some(&sem),
        run_dir: dir.path(),
        progress: false,
        resume: false,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("40-dimensional"), "{err}");
}

#[test]
fn pca_initialises_the_id_table_and_the_frozen_table_holds_the_vectors() {
    let (_dir, dataset, _) = fixture();
    let sem = semantic_inputs(&dataset);
    let model_cfg = config(dataset.n_items(), Backbone::Bert4rec, true);
    let vars = candle_nn::VarMap::new();
    SeqRec::new(
        &model_cfg,
        candle_nn::VarBuilder::from_varmap(&vars, candle_core::DType::F32, &Device::Cpu),
    )
    .unwrap();
    llm_esr::train::init::init_semantic(&vars, &model_cfg, &TrainConfig::default(), &sem).unwrap();
    let w = snapshot(&vars).unwrap();
    let rows = |name: &str| -> Vec<Vec<f32>> { w[name].to_vec2().unwrap() };
    let (id, llm) = (rows("item_emb.weight"), rows("llm_emb.weight"));
    let n = dataset.n_items();
    // Padding row, items, then the BERT4Rec mask row.
    assert_eq!((id.len(), llm.len()), (n + 2, n + 2));
    for r in [0, n + 1] {
        assert!(
            id[r].iter().chain(&llm[r]).all(|&v| v == 0.0),
            "row {r} is zero"
        );
    }
    let items: Vec<Vec<f32>> = sem.items.to_vec2().unwrap();
    assert_eq!(&llm[1..=n], &items[..]);
    let flat: Vec<f32> = items.concat();
    let pca = llm_esr::semantic::pca::project(&flat, n, DIM, 32).unwrap();
    let max = id[1..=n]
        .concat()
        .iter()
        .zip(&pca)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-6, "{max}");
    // Ring neighbours start closer to each other than to the far side of the ring.
    let key_row = |k: u32| {
        dataset
            .item_keys
            .iter()
            .position(|x| *x == format!("i{k}"))
            .unwrap()
    };
    let d = |a: usize, b: usize| -> f32 {
        id[a].iter().zip(&id[b]).map(|(x, y)| (x - y).powi(2)).sum()
    };
    assert!(d(key_row(10), key_row(11)) < d(key_row(10), key_row(40)));
}

/// New items held out of a cold-start run are never trained: their ID rows end training exactly
/// as the PCA started them (no candidate, negative or input ever touched them), the run refuses
/// BCE and a dataset that still holds them, and the test report splits users into cold and warm
/// targets.
#[test]
fn held_out_new_items_are_never_trained_and_get_their_own_group() {
    use llm_esr::data::{ColdConfig, ColdItems};
    use llm_esr::eval::{evaluate_with, EvalOptions};
    let (dir, full, _) = fixture();
    let cold_cfg = ColdConfig {
        share: 0.1,
        seed: 3,
    };
    let cold = ColdItems::draw(full.n_items(), cold_cfg).unwrap();
    let dataset = cold.hold_out(&full).unwrap();
    let groups = Groups::compute(&dataset, Default::default(), 20).unwrap();
    let sem = semantic_inputs(&dataset);
    let model_cfg = config(dataset.n_items(), Backbone::Sasrec, true);
    let mut cfg = TrainConfig {
        epochs: 4,
        batch_size: 32,
        lr: 5e-3,
        seed: 5,
        teacher: Teacher::Cached,
        cold: Some(cold_cfg),
        ..TrainConfig::default()
    };
    let inputs = |cfg: &TrainConfig, data: &Dataset, name: &str| {
        let (model_cfg, sem, groups, dir) = (&model_cfg, &sem, &groups, dir.path().join(name));
        let data = data.clone();
        let cfg = cfg.clone();
        move || {
            train(&TrainInputs {
                data: &data,
                groups,
                model: model_cfg,
                train: &cfg,
                semantic: Some(sem),
                run_dir: &dir,
                progress: false,
                resume: false,
            })
        }
    };
    let bce = inputs(&cfg, &dataset, "bce")().err().unwrap().to_string();
    assert!(bce.contains("softmax-family loss"), "{bce}");
    cfg.loss.kind = LossKind::Ce;
    let leaked = inputs(&cfg, &full, "leak")().err().unwrap().to_string();
    assert!(leaked.contains("hold them out"), "{leaked}");
    let (model, weights, _) = inputs(&cfg, &dataset, "cold")().unwrap();
    let items: Vec<f32> = sem.items.flatten_all().unwrap().to_vec1().unwrap();
    let pca = llm_esr::semantic::pca::project(&items, dataset.n_items(), DIM, 32).unwrap();
    let id: Vec<Vec<f32>> = weights["item_emb.weight"].to_vec2().unwrap();
    for &c in cold.ids() {
        let start = &pca[(c as usize - 1) * 32..c as usize * 32];
        assert_eq!(&id[c as usize][..], start, "new item {c} moved");
    }
    let warm_moved = (1..=dataset.n_items())
        .filter(|&i| !cold.contains(i as u32))
        .any(|i| id[i][..] != pca[(i - 1) * 32..i * 32]);
    assert!(warm_moved, "warm items train");
    let report = evaluate_with(
        &model,
        &dataset,
        &groups,
        Stage::Test,
        Protocol::Full,
        0,
        64,
        EvalOptions {
            cold: Some(&cold),
            ..EvalOptions::default()
        },
    )
    .unwrap();
    let n_cold = dataset
        .sequences
        .iter()
        .filter(|s| cold.contains(*s.last().unwrap()))
        .count();
    assert!(n_cold > 0);
    assert_eq!(report.group("cold_item").users, n_cold);
    assert_eq!(
        report.group("cold_item").users + report.group("warm_item").users,
        report.group("overall").users
    );
}

//! The benchmark page's workload, natively: every bundle of a built benchmark site
//! (`LLMESR_BENCH_SITE`, default `target/bench/site`, written by `scripts/bench.sh`), sessions of
//! 1, 10, 50 and 200 items — the dataset's workload file, or for other catalogues the same seeded
//! random sessions the page draws — timed through `Recommender::recommend`, plus the catalogue
//! scorer alone. Without a site it times a synthetic MovieLens-1M-shaped LLM-ESR bundle.

use criterion::{criterion_group, criterion_main, Criterion};
use llm_esr::bundle::{self, EncoderType, Manifest, Precision, TableType};
use llm_esr::model::{Backbone, ModelConfig, SemanticConfig};
use llm_esr::recommend::Recommender;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

const LENGTHS: [usize; 4] = [1, 10, 50, 200];

/// mulberry32, as `www/bench.js` has it, so both sides draw the same synthetic sessions.
struct Mulberry(u32);
impl Mulberry {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x6d2b79f5);
        let mut t = self.0;
        t = (t ^ (t >> 15)).wrapping_mul(t | 1);
        t ^= t.wrapping_add((t ^ (t >> 7)).wrapping_mul(t | 61));
        (t ^ (t >> 14)) as f64 / 4294967296.0
    }
}

fn random_sessions(n: usize) -> HashMap<usize, Vec<Vec<u32>>> {
    let mut r = Mulberry(7);
    LENGTHS
        .iter()
        .map(|&l| {
            let ss = (0..32)
                .map(|_| (0..l).map(|_| 1 + (r.next() * n as f64) as u32).collect())
                .collect();
            (l, ss)
        })
        .collect()
}

struct Case {
    name: String,
    rec: Recommender,
    sessions: HashMap<usize, Vec<Vec<u32>>>,
}

fn cases() -> Vec<Case> {
    let site = PathBuf::from(
        std::env::var("LLMESR_BENCH_SITE").unwrap_or_else(|_| "target/bench/site".into()),
    );
    let manifest = site.join("bundles/manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        eprintln!(
            "{} not found (run scripts/bench.sh); timing a synthetic ML-1M-shaped bundle",
            manifest.display()
        );
        let mut cfg = ModelConfig::reference(Backbone::Sasrec, 3503);
        let mut sem = SemanticConfig::reference(64);
        sem.folded = true;
        cfg.semantic = Some(sem);
        let w = llm_esr::model::init::random_weights(&cfg, 1).unwrap();
        let p = Precision {
            tables: TableType::Q8,
            encoder: EncoderType::F32,
        };
        let bytes = bundle::write_with(&Manifest::synthetic("s", &cfg), &w, p).unwrap();
        let rec = Recommender::from_bytes(&bytes).unwrap();
        return vec![Case {
            name: "synthetic-3503-q8".into(),
            sessions: random_sessions(3503),
            rec,
        }];
    };
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let workload: Option<serde_json::Value> =
        std::fs::read_to_string(site.join("bundles/workload.json"))
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap());
    manifest["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let file = site.join("bundles").join(b["file"].as_str().unwrap());
            let rec = Recommender::from_bytes(&std::fs::read(&file).unwrap()).unwrap();
            let n = rec.n_items();
            let sessions = match &workload {
                Some(w)
                    if w["dataset"] == rec.manifest().dataset.as_str()
                        && w["items"].as_u64() == Some(n as u64) =>
                {
                    LENGTHS
                        .iter()
                        .map(|l| {
                            let ss = serde_json::from_value(w["sessions"][l.to_string()].clone())
                                .unwrap_or_default();
                            (*l, ss)
                        })
                        .collect()
                }
                _ => random_sessions(n),
            };
            Case {
                name: b["name"].as_str().unwrap().to_string(),
                rec,
                sessions,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(case.name.clone());
        for len in LENGTHS {
            let ss = &case.sessions[&len];
            if ss.is_empty() {
                continue;
            }
            let mut i = 0;
            g.bench_function(format!("recommend/{len}"), |b| {
                b.iter(|| {
                    i = (i + 1) % ss.len();
                    black_box(case.rec.recommend(&ss[i], 10, true).unwrap())
                })
            });
        }
        let users: Vec<Vec<f32>> = case.sessions[&50]
            .iter()
            .take(16)
            .map(|s| case.rec.user_vector(s).unwrap())
            .collect();
        if !users.is_empty() {
            let mut i = 0;
            g.bench_function("scorer", |b| {
                b.iter(|| {
                    i = (i + 1) % users.len();
                    black_box(case.rec.engine().top_k_for_user(&users[i], 10, &[]))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Arbitrary sessions and k against a fixed synthetic model: an error or a well-formed answer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_esr::bundle::{self, Manifest};
use llm_esr::model::init::random_weights;
use llm_esr::model::{Mode, ModelConfig};
use llm_esr::recommend::Recommender;
use std::sync::OnceLock;

fn rec() -> &'static Recommender {
    static R: OnceLock<Recommender> = OnceLock::new();
    R.get_or_init(|| {
        let mut cfg = ModelConfig::sasrec(50);
        cfg.max_len = 16;
        cfg.hidden = 16;
        cfg.n_heads = 2;
        cfg.mode = Mode::Corrected;
        let bytes = bundle::write(&Manifest::synthetic("fuzz", &cfg), &random_weights(&cfg, 1).unwrap()).unwrap();
        Recommender::from_bytes(&bytes).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let k = u16::from_le_bytes([data[0], data[1]]) as usize;
    let exclude = data[2] & 1 == 1;
    let session: Vec<u32> = data[3..]
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            // Mostly small ids so valid sessions are common; raw values otherwise.
            let v = u32::from_le_bytes(b);
            if v & 0x8000_0000 == 0 { v % 60 } else { v }
        })
        .collect();
    if let Ok(out) = rec().recommend(&session, k, exclude) {
        assert!(out.len() <= k);
        assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
        if exclude {
            assert!(out.iter().all(|r| !session.contains(&r.id)));
        }
    }
});

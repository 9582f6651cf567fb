//! Any bytes handed to the bundle loader: an error or a recommender, never a panic or a runaway
//! allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = llm_esr::recommend::Recommender::from_bytes(data) {
        let _ = rec.recommend(&[1], 5, true);
    }
});

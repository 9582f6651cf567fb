//! Arbitrary bytes through the data-file readers and the dataset builder: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_esr::data::{inter_txt, recbole, Dataset, FilterKind, FilterOptions, GroupConfig, Groups, RawData};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let interactions = match sel % 4 {
        0 => recbole::parse_inter(text, "f.inter"),
        1 => inter_txt::parse_inter(text, "inter.txt"),
        2 => {
            let _ = recbole::parse_item(text, "f.item");
            return;
        }
        _ => {
            let _ = inter_txt::parse_item_text(text, "item_text.tsv");
            return;
        }
    };
    let Ok(interactions) = interactions else { return };
    let raw = RawData { name: "fuzz".into(), interactions, items: Default::default() };
    let filter = FilterOptions {
        kind: if sel & 4 == 0 { FilterKind::Single } else { FilterKind::Kcore },
        min_user: (sel >> 3 & 3) as usize,
        min_item: (sel >> 5 & 3) as usize,
    };
    if let Ok(d) = Dataset::from_raw(&raw, &filter) {
        let g = Groups::compute(&d, GroupConfig::default(), 200).unwrap();
        assert!(g.n_tail_items <= d.n_items());
        assert!(d.sequences.iter().all(|s| s.len() >= 3 && s.iter().all(|&i| i >= 1 && i as usize <= d.n_items())));
    }
});

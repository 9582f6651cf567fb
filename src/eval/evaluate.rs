//! The evaluation loop: one target per user, ranked under the full or the sampled protocol, with
//! metrics accumulated per long-tail group.

use super::metrics::Accum;
use crate::data::groups::Groups;
use crate::data::split::{eval_case, Stage};
use crate::data::ColdItems;
use crate::data::Dataset;
use crate::Result;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// How the target is ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// Against every item not in the user's input history (the target itself always competes).
    Full,
    /// Against `n` uniform negatives drawn from items outside the input history and the target —
    /// the paper's protocol with n = 100.
    Sampled(usize),
}

impl std::str::FromStr for Protocol {
    type Err = crate::Error;

    /// `full`, or `sampledN` for N ≥ 1 negatives (the paper's `sampled100`).
    fn from_str(s: &str) -> Result<Self> {
        if s == "full" {
            return Ok(Protocol::Full);
        }
        match s.strip_prefix("sampled").map(str::parse::<usize>) {
            Some(Ok(n)) if n > 0 => Ok(Protocol::Sampled(n)),
            _ => Err(crate::Error::Config(format!(
                "protocol {s:?}: use full or sampledN (e.g. sampled100)"
            ))),
        }
    }
}

impl Protocol {
    /// The label used in tables and `reports/quality.json`: `full` or `sampled100`.
    pub fn label(&self) -> String {
        match self {
            Protocol::Full => "full".to_string(),
            Protocol::Sampled(n) => format!("sampled{n}"),
        }
    }
}

/// Anything that scores all items for a batch of input histories.
pub trait Scorer {
    /// One score per item id `0..=n_items` for each input (index 0 is ignored).
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>>;
}

/// Group names in report order.
pub const GROUPS: [&str; 5] = [
    "overall",
    "tail_item",
    "head_item",
    "tail_user",
    "head_user",
];

/// Metrics per group for one protocol and stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub protocol: String,
    pub groups: BTreeMap<String, Accum>,
}

/// The groups of a cold-start evaluation: users whose target is a new item, and the rest.
pub const COLD_GROUPS: [&str; 2] = ["cold_item", "warm_item"];

impl EvalReport {
    pub fn group(&self, name: &str) -> &Accum {
        &self.groups[name]
    }

    /// The report's groups in report order: [`GROUPS`], then [`COLD_GROUPS`] where present.
    pub fn group_names(&self) -> Vec<&'static str> {
        GROUPS
            .into_iter()
            .chain(COLD_GROUPS)
            .filter(|g| self.groups.contains_key(*g))
            .collect()
    }
}

/// 0-based rank of `target` among `candidates` (which exclude it); ties count against the target, so
/// a constant scorer cannot look good.
pub(crate) fn rank_of(scores: &[f32], target: u32, candidates: impl Iterator<Item = u32>) -> usize {
    let t = scores[target as usize];
    if t.is_nan() {
        return usize::MAX / 2;
    }
    // A NaN candidate also counts against the target.
    candidates
        .filter(|&c| scores[c as usize].partial_cmp(&t) != Some(std::cmp::Ordering::Less))
        .count()
}

/// One evaluated user: the length of its input history, its target and the target's 0-based rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The length of the user's whole input history (before any [`EvalOptions::session_len`]
    /// cut), which decides its tail/head user group.
    pub input_len: usize,
    pub target: u32,
    pub rank: usize,
}

/// The target's rank for every user at `stage`, in user order.
///
/// Users are scored in order of input length, so that a batch's histories need about the same
/// padding: the encoder's cost follows the longest history of a batch, and in user order nearly
/// every batch of ML-1M holds one of 200 items. Padding is masked (corrected mode) or fixed at
/// `max_len` (faithful), so the order changes no score. Sampled negatives are drawn before any
/// scoring, in user order, so they do not depend on it either.
pub fn rank_all(
    scorer: &dyn Scorer,
    data: &Dataset,
    stage: Stage,
    protocol: Protocol,
    seed: u64,
    batch_size: usize,
) -> Result<Vec<Ranked>> {
    rank_all_with(
        scorer,
        data,
        stage,
        protocol,
        seed,
        batch_size,
        EvalOptions::default(),
    )
}

/// How the users' inputs are cut before they are scored, and which items take part.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EvalOptions<'a> {
    /// Only the newest `k` items of each input history (a short session, as a visitor of a static
    /// site builds one); the model is unchanged, and only those items are excluded from the
    /// candidates. `None`: the whole history.
    pub session_len: Option<usize>,
    /// Items that are no candidates: new items before their launch (validating a cold-start run).
    pub excluded: Option<&'a ColdItems>,
    /// New items: users whose target is one of them form the `cold_item` group, the rest
    /// `warm_item`.
    pub cold: Option<&'a ColdItems>,
}

/// [`rank_all`] with inputs cut as `opts` says.
pub fn rank_all_with(
    scorer: &dyn Scorer,
    data: &Dataset,
    stage: Stage,
    protocol: Protocol,
    seed: u64,
    batch_size: usize,
    opts: EvalOptions,
) -> Result<Vec<Ranked>> {
    let n_items = data.n_items() as u32;
    let is_excluded = |c: u32| opts.excluded.is_some_and(|x| x.contains(c));
    let full_len: Vec<usize> = data
        .sequences
        .iter()
        .map(|s| eval_case(s, stage).0.len())
        .collect();
    let cases: Vec<(&[u32], u32)> = data
        .sequences
        .iter()
        .map(|s| {
            let (input, target) = eval_case(s, stage);
            match opts.session_len {
                Some(k) => (&input[input.len().saturating_sub(k)..], target),
                None => (input, target),
            }
        })
        .collect();
    let histories: Vec<HashSet<u32>> = cases
        .iter()
        .map(|(input, _)| input.iter().copied().collect())
        .collect();
    let negatives: Vec<Vec<u32>> = match protocol {
        Protocol::Full => Vec::new(),
        Protocol::Sampled(n) => {
            let mut rng = SmallRng::seed_from_u64(seed);
            cases
                .iter()
                .zip(&histories)
                .map(|(&(_, target), history)| {
                    let blocked = opts.excluded.map_or(0, |c| c.ids().len());
                    let available = (n_items as usize)
                        .saturating_sub(history.len() + usize::from(!history.contains(&target)))
                        .saturating_sub(blocked);
                    let n = n.min(available);
                    let mut negs = HashSet::with_capacity(n);
                    while negs.len() < n {
                        let c = rng.random_range(1..=n_items);
                        if c != target && !history.contains(&c) && !is_excluded(c) {
                            negs.insert(c);
                        }
                    }
                    let mut negs: Vec<u32> = negs.into_iter().collect();
                    negs.sort_unstable();
                    negs
                })
                .collect()
        }
    };
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&u| cases[u].0.len());
    let mut ranks = vec![0usize; cases.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let inputs: Vec<&[u32]> = chunk.iter().map(|&u| cases[u].0).collect();
        let scores = scorer.score(&inputs)?;
        if scores.len() != inputs.len() {
            return Err(crate::Error::Training(format!(
                "the scorer returned {} score lists for {} users",
                scores.len(),
                inputs.len()
            )));
        }
        for (&u, scores) in chunk.iter().zip(&scores) {
            let (target, history) = (cases[u].1, &histories[u]);
            ranks[u] = match protocol {
                Protocol::Full => rank_of(
                    scores,
                    target,
                    (1..=n_items)
                        .filter(|&c| c != target && !history.contains(&c) && !is_excluded(c)),
                ),
                Protocol::Sampled(_) => rank_of(scores, target, negatives[u].iter().copied()),
            };
        }
    }
    Ok(cases
        .iter()
        .zip(ranks)
        .zip(full_len)
        .map(|((&(_, target), rank), input_len)| Ranked {
            input_len,
            target,
            rank,
        })
        .collect())
}

/// The two protocols every result carries: full ranking and 100 sampled negatives.
pub const PROTOCOLS: [Protocol; 2] = [Protocol::Full, Protocol::Sampled(100)];

/// Evaluates `scorer` at `stage` under both [`PROTOCOLS`], 256 users per batch.
pub fn evaluate_protocols(
    scorer: &dyn Scorer,
    data: &Dataset,
    groups: &Groups,
    stage: Stage,
    seed: u64,
) -> Result<Vec<EvalReport>> {
    PROTOCOLS
        .into_iter()
        .map(|p| evaluate(scorer, data, groups, stage, p, seed, 256))
        .collect()
}

/// Evaluates `scorer` on every user at `stage`.
pub fn evaluate(
    scorer: &dyn Scorer,
    data: &Dataset,
    groups: &Groups,
    stage: Stage,
    protocol: Protocol,
    seed: u64,
    batch_size: usize,
) -> Result<EvalReport> {
    evaluate_with(
        scorer,
        data,
        groups,
        stage,
        protocol,
        seed,
        batch_size,
        EvalOptions::default(),
    )
}

/// [`evaluate`] with inputs cut as `opts` says.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_with(
    scorer: &dyn Scorer,
    data: &Dataset,
    groups: &Groups,
    stage: Stage,
    protocol: Protocol,
    seed: u64,
    batch_size: usize,
    opts: EvalOptions,
) -> Result<EvalReport> {
    let cold_groups: &[&str] = if opts.cold.is_some() {
        &COLD_GROUPS
    } else {
        &[]
    };
    let mut acc: BTreeMap<String, Accum> = GROUPS
        .iter()
        .chain(cold_groups)
        .map(|g| (g.to_string(), Accum::default()))
        .collect();
    for r in rank_all_with(scorer, data, stage, protocol, seed, batch_size, opts)? {
        let item_group = if groups.is_tail_item(r.target) {
            "tail_item"
        } else {
            "head_item"
        };
        let user_group = if groups.is_tail_user(r.input_len) {
            "tail_user"
        } else {
            "head_user"
        };
        let cold_group = opts.cold.map(|c| {
            if c.contains(r.target) {
                "cold_item"
            } else {
                "warm_item"
            }
        });
        for g in ["overall", item_group, user_group]
            .into_iter()
            .chain(cold_group)
        {
            acc.get_mut(g).expect("group names are fixed").add(r.rank);
        }
    }
    Ok(EvalReport {
        protocol: protocol.label(),
        groups: acc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::groups::GroupConfig;

    /// Scores item i as i: higher ids rank first.
    struct ById(usize);
    impl Scorer for ById {
        fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
            Ok(inputs
                .iter()
                .map(|_| (0..=self.0).map(|i| i as f32).collect())
                .collect())
        }
    }

    fn data() -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=6).map(|i| i.to_string()).collect(),
            item_titles: (0..=6).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into(), "b".into()],
            // a: input [6, 1], target 3 → candidates 2,4,5 (6 excluded as history); 4,5 beat 3 → rank 2.
            // b: input [2, 3], target 6 → rank 0.
            sequences: vec![vec![6, 1, 3], vec![2, 3, 6]],
        }
    }

    #[test]
    fn full_ranking_excludes_history_and_groups_users() {
        let d = data();
        let g = Groups::compute(&d, GroupConfig::default(), 200).unwrap();
        let r = evaluate(&ById(6), &d, &g, Stage::Test, Protocol::Full, 0, 1).unwrap();
        let o = r.group("overall");
        assert_eq!(o.users, 2);
        assert!((o.mean("ndcg@5") - (1.0 + 1.0 / 4f64.log2()) / 2.0).abs() < 1e-12);
        assert!((o.mean("mrr") - (1.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        let sizes: usize = ["tail_item", "head_item"]
            .iter()
            .map(|n| r.group(n).users)
            .sum();
        assert_eq!(sizes, 2);
    }

    #[test]
    fn ties_count_against_the_target() {
        struct Flat;
        impl Scorer for Flat {
            fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
                Ok(inputs.iter().map(|_| vec![0.0; 7]).collect())
            }
        }
        let d = data();
        let g = Groups::compute(&d, GroupConfig::default(), 200).unwrap();
        let r = evaluate(&Flat, &d, &g, Stage::Test, Protocol::Full, 0, 8).unwrap();
        // a: 3 candidates tie → rank 3; b: candidates 1,4,5 tie → rank 3.
        assert!((r.group("overall").mean("mrr") - 0.25).abs() < 1e-12);
    }

    /// Scores item i by how close it is to the input's newest item + 1, so every user's ranks
    /// depend on its own input.
    struct FavoursNext(u32);
    impl Scorer for FavoursNext {
        fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
            Ok(inputs
                .iter()
                .map(|s| {
                    let next = *s.last().unwrap() as f32 + 1.0;
                    (0..=self.0).map(|i| -(i as f32 - next).abs()).collect()
                })
                .collect())
        }
    }

    #[test]
    fn scoring_in_length_order_gives_each_user_its_own_rank() {
        let d = Dataset {
            name: "t".into(),
            item_keys: (0..=6).map(|i| i.to_string()).collect(),
            item_titles: (0..=6).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into(), "b".into(), "c".into()],
            // Test inputs of lengths 4, 2, 3: scored in the order b, c, a.
            // a: input ends at 4, target 5 → rank 0.
            // b: input [6, 2], target 4; candidates 1, 3, 5; only 3 scores above 4 → rank 1.
            // c: input [3, 1, 2], target 6; candidates 4, 5 both score above it → rank 2.
            sequences: vec![vec![1, 2, 3, 4, 5], vec![6, 2, 4], vec![3, 1, 2, 6]],
        };
        for batch in [1, 2, 8] {
            let r = rank_all(&FavoursNext(6), &d, Stage::Test, Protocol::Full, 0, batch).unwrap();
            let got: Vec<(usize, u32, usize)> =
                r.iter().map(|r| (r.input_len, r.target, r.rank)).collect();
            assert_eq!(got, vec![(4, 5, 0), (2, 4, 1), (3, 6, 2)], "batch {batch}");
        }
        let sampled = |batch| {
            rank_all(
                &FavoursNext(6),
                &d,
                Stage::Test,
                Protocol::Sampled(2),
                9,
                batch,
            )
            .unwrap()
            .iter()
            .map(|r| r.rank)
            .collect::<Vec<_>>()
        };
        assert_eq!(sampled(1), sampled(8));
    }

    #[test]
    fn a_scorer_that_drops_users_is_an_error() {
        struct Short;
        impl Scorer for Short {
            fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
                Ok(vec![vec![0.0; 7]; inputs.len() - 1])
            }
        }
        let d = data();
        let err = rank_all(&Short, &d, Stage::Test, Protocol::Full, 0, 8).unwrap_err();
        assert!(
            err.to_string().contains("1 score lists for 2 users"),
            "{err}"
        );
    }

    #[test]
    fn sampled_protocol_caps_negatives_at_what_exists() {
        let d = data();
        let g = Groups::compute(&d, GroupConfig::default(), 200).unwrap();
        let r = evaluate(&ById(6), &d, &g, Stage::Valid, Protocol::Sampled(100), 3, 2).unwrap();
        // Valid: a input [6] target 1 → negatives {2,3,4,5} all beat 1 → rank 4.
        //        b input [2] target 3 → negatives {1,4,5,6}; 4,5,6 beat 3 → rank 3.
        assert!((r.group("overall").mean("mrr") - (0.2 + 0.25) / 2.0).abs() < 1e-12);
        assert_eq!(Protocol::Sampled(100).label(), "sampled100");
    }
}

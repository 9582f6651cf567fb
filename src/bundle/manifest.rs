//! The bundle's JSON manifest: model config, catalogue and the long-tail cut used for badges.

use crate::model::ModelConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// One catalogue entry; its position in [`Manifest::items`] plus one is its item id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemEntry {
    /// The dataset's own key (RecBole item id, `inter.txt` item).
    pub key: String,
    pub title: String,
    /// Training interactions; drives the head/tail badge.
    pub popularity: u32,
    /// Added after training from its text alone (`llmesr add-items`, `rec.addItems`), or held out
    /// of a cold-start run's training.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Human-readable name, e.g. `ml-1m sasrec corrected`.
    pub name: String,
    pub dataset: String,
    pub model: ModelConfig,
    /// Items `1..=n_items` in id order (stored packed, [`super::catalogue`]).
    #[serde(with = "super::catalogue")]
    pub items: Vec<ItemEntry>,
    /// Items with popularity below this are tail items.
    pub item_tail_cut: u32,
    /// The items' text vectors and the serving-time text term, when the bundle carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<super::text::TextSpace>,
    /// How the bundle's model was trained, as report rows label it (absent in bundles exported
    /// before it was recorded, and in synthetic ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
}

/// The training labels of a bundle's model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// `None` for the reference's BCE.
    pub loss: Option<String>,
    /// How an LLM-ESR model departs from the method (`no-sd`, `cross-residual`, …).
    pub ablation: Option<String>,
    pub seed: u64,
    /// The new items a cold-start run held out of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<crate::data::ColdConfig>,
    /// The named configuration the run was trained as (`best-base`, `best-llm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

impl Manifest {
    /// A catalogue of `cfg.n_items` placeholder items (`item 1`, …) with popularity equal to the id,
    /// for bundles built from synthetic weights.
    pub fn synthetic(name: &str, model: &ModelConfig) -> Self {
        Manifest {
            name: name.to_string(),
            dataset: "synthetic".to_string(),
            model: model.clone(),
            items: (1..=model.n_items)
                .map(|i| ItemEntry {
                    key: i.to_string(),
                    title: format!("item {i}"),
                    popularity: i as u32,
                    new: false,
                })
                .collect(),
            item_tail_cut: (model.n_items as f64 * 0.8) as u32,
            text: None,
            run: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| Error::Bundle(format!("model config: {e}")))?;
        if self.items.len() != self.model.n_items {
            return Err(Error::Bundle(format!(
                "manifest lists {} items but the model has {}",
                self.items.len(),
                self.model.n_items
            )));
        }
        if let Some(t) = &self.text {
            t.validate()?;
        }
        Ok(())
    }
}

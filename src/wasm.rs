//! The JavaScript face of [`crate::recommend::Recommender`]: thin wasm-bindgen glue, errors as `JsError`.

use crate::recommend;
use serde::Serialize;
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// An on-device recommender built from bundle bytes.
#[wasm_bindgen]
pub struct Recommender {
    inner: recommend::Recommender,
    last_latency_ms: Cell<f64>,
}

/// Milliseconds from the page's or worker's high-resolution clock (NaN where there is none).
fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .filter(|p| !p.is_undefined())
        .map(|p| p.unchecked_into::<web_sys::Performance>().now())
        .unwrap_or(f64::NAN)
}

#[derive(Serialize)]
struct ItemView<'a> {
    id: u32,
    key: &'a str,
    title: &'a str,
    popularity: u32,
    tail: bool,
}

/// Reads a JS array of item ids, refusing anything that is not a whole number in u32 range.
fn session_from_js(session: JsValue) -> Result<Vec<u32>, JsError> {
    let values: Vec<f64> = serde_wasm_bindgen::from_value(session)
        .map_err(|e| JsError::new(&format!("session must be an array of item ids: {e}")))?;
    values
        .into_iter()
        .map(|v| {
            if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
                Ok(v as u32)
            } else {
                Err(JsError::new(&format!(
                    "item id {v} is not a non-negative integer"
                )))
            }
        })
        .collect()
}

fn js_err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen]
impl Recommender {
    /// Loads a bundle (the bytes of a `.gguf` file written by `llmesr export`).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<Recommender, JsError> {
        let inner = recommend::Recommender::from_bytes(bytes).map_err(js_err)?;
        gloo::console::debug!(format!("llm-esr: loaded {} items", inner.n_items()));
        Ok(Recommender {
            inner,
            last_latency_ms: Cell::new(f64::NAN),
        })
    }

    /// The top `k` items for `session` (an array of item ids, oldest first), as
    /// `[{id, key, title, score, tail, because}]`, best first. Session items are left out unless
    /// `includeSession` is true; `tailWeight` (0 by default) re-ranks toward less-popular items.
    pub fn recommend(
        &self,
        session: JsValue,
        k: usize,
        #[wasm_bindgen(js_name = includeSession)] include_session: Option<bool>,
        #[wasm_bindgen(js_name = tailWeight)] tail_weight: Option<f32>,
    ) -> Result<JsValue, JsError> {
        let start = now_ms();
        let session = session_from_js(session)?;
        let opts = recommend::Options {
            exclude_session: !include_session.unwrap_or(false),
            tail_weight: tail_weight.unwrap_or(0.0),
        };
        let recs = self
            .inner
            .recommend_with(&session, k, opts)
            .map_err(js_err)?;
        let out = serde_wasm_bindgen::to_value(&recs)?;
        self.last_latency_ms.set(now_ms() - start);
        Ok(out)
    }

    /// Wall time of the last successful `recommend` call in milliseconds, conversion to JS included.
    #[wasm_bindgen(getter, js_name = lastLatencyMs)]
    pub fn last_latency_ms(&self) -> f64 {
        self.last_latency_ms.get()
    }

    /// One catalogue entry: `{id, key, title, popularity, tail}`.
    pub fn item(&self, id: u32) -> Result<JsValue, JsError> {
        let e = self.inner.item(id).map_err(js_err)?;
        Ok(serde_wasm_bindgen::to_value(&ItemView {
            id,
            key: &e.key,
            title: &e.title,
            popularity: e.popularity,
            tail: self.inner.is_tail(id),
        })?)
    }

    /// The whole catalogue, in id order.
    pub fn items(&self) -> Result<JsValue, JsError> {
        let views: Vec<ItemView> = self
            .inner
            .manifest()
            .items
            .iter()
            .enumerate()
            .map(|(i, e)| ItemView {
                id: i as u32 + 1,
                key: &e.key,
                title: &e.title,
                popularity: e.popularity,
                tail: self.inner.is_tail(i as u32 + 1),
            })
            .collect();
        Ok(serde_wasm_bindgen::to_value(&views)?)
    }

    #[wasm_bindgen(getter, js_name = numItems)]
    pub fn num_items(&self) -> usize {
        self.inner.n_items()
    }

    /// The bundle's name, dataset, model configuration, storage types and size:
    /// `{name, dataset, model, tables, encoder, bytes, tableMemoryBytes}`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let m = self.inner.manifest();
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Info<'a> {
            name: &'a str,
            dataset: &'a str,
            model: &'a crate::model::ModelConfig,
            tables: &'static str,
            encoder: &'static str,
            bytes: usize,
            table_memory_bytes: usize,
        }
        let p = self.inner.precision();
        Ok(serde_wasm_bindgen::to_value(&Info {
            name: &m.name,
            dataset: &m.dataset,
            model: &m.model,
            tables: p.tables.label(),
            encoder: p.encoder.label(),
            bytes: self.inner.bundle_bytes(),
            table_memory_bytes: self.inner.engine().table_bytes(),
        })?)
    }

    /// The user vector the encoder computes for `session` (views concatenated).
    #[wasm_bindgen(js_name = userVector)]
    pub fn user_vector(&self, session: JsValue) -> Result<Vec<f32>, JsError> {
        let session = session_from_js(session)?;
        self.inner.user_vector(&session).map_err(js_err)
    }

    /// The ids of the `k` best items for a given user vector: the catalogue-scoring half of
    /// `recommend`, on its own, for the benchmark page.
    #[wasm_bindgen(js_name = topKForUser)]
    pub fn top_k_for_user(&self, user: &[f32], k: usize) -> Result<Vec<u32>, JsError> {
        if user.len() != self.inner.engine().user_width() {
            return Err(JsError::new(&format!(
                "user vector has {} values, the model's has {}",
                user.len(),
                self.inner.engine().user_width()
            )));
        }
        Ok(self
            .inner
            .engine()
            .top_k_for_user(user, k, &[])
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Every item's vector (views concatenated), dequantized to f32, row `id` at
    /// `id * width`: what a plain-JavaScript scorer needs.
    #[wasm_bindgen(js_name = itemMatrix)]
    pub fn item_matrix(&self) -> Vec<f32> {
        let e = self.inner.engine();
        let rows = self.inner.n_items() + 1;
        let mut out = Vec::with_capacity(rows * e.user_width());
        let mut row = Vec::new();
        for id in 0..rows as u32 {
            e.item_vector(id, &mut row);
            out.extend_from_slice(&row);
        }
        out
    }
}

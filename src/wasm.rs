//! The JavaScript face of [`crate::recommend::Recommender`]: thin wasm-bindgen glue, errors as `JsError`.
//!
//! Arguments arrive as `JsValue` and are read here as JavaScript passes them, so that -1, 1.5, NaN,
//! 1e9 or a string reach a check instead of being coerced by wasm-bindgen (a `u32` parameter would
//! turn -1 into 4294967295). What is a JS question (is it a number, a whole one, does it fit an
//! f32) is answered here; what the model allows (k at least 1, known ids, a finite tail weight,
//! a user vector of the model's width) is checked by the code it protects, natively as well.
//!
//! A panic is never the answer: the hook installed at start-up throws it as a JS `Error` (see
//! [`start`]), and every call after it is refused with that message.

use crate::infer::topk;
use crate::recommend;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    /// The message of the panic that stopped this instance, if one did.
    static PANICKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the panic hook when the module is instantiated. With `panic = "abort"` (the only
/// choice on stable `wasm32-unknown-unknown`) a panic would end in an `unreachable` trap, a bare
/// `RuntimeError` that says nothing. The hook throws a JS `Error` with the panic's message instead;
/// the call's Rust frames are abandoned without running destructors (what they held leaks) and the
/// standard library counts the panic as still running, so a second one would trap. Hence every
/// later call is refused with the first panic's message: reload the module to go on.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("llm-esr {info}").replace('\n', " ");
        PANICKED.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.get_or_insert_with(|| message.clone());
            }
        });
        wasm_bindgen::throw_str(&message);
    }));
}

/// Refuses a call once a panic has left this instance in an unknown state.
fn healthy() -> Result<(), JsError> {
    PANICKED.with(|p| match p.try_borrow().as_deref() {
        Ok(None) => Ok(()),
        Ok(Some(m)) => Err(JsError::new(&format!(
            "llm-esr stopped after an internal error ({m}); reload the module to go on"
        ))),
        Err(_) => Err(JsError::new("llm-esr stopped after an internal error")),
    })
}

/// Panics on purpose, so the browser tests can see what a caller gets from a panic. Not API.
#[doc(hidden)]
#[wasm_bindgen(js_name = __panicForTests, skip_typescript)]
pub fn panic_for_tests() -> Result<(), JsError> {
    healthy()?;
    panic!("a panic asked for by __panicForTests")
}

/// An on-device recommender built from bundle bytes.
#[wasm_bindgen]
pub struct Recommender {
    inner: recommend::Recommender,
    last_latency_ms: Cell<Option<f64>>,
}

/// Milliseconds from the page's or worker's high-resolution clock, where there is one.
fn now_ms() -> Option<f64> {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .filter(|p| !p.is_undefined() && !p.is_null())
        .map(|p| p.unchecked_into::<web_sys::Performance>().now())
}

#[derive(Serialize)]
struct ItemView<'a> {
    id: u32,
    key: &'a str,
    title: &'a str,
    popularity: u32,
    tail: bool,
    /// Added after training from its text alone.
    new: bool,
}

/// A number as JavaScript prints it (`-1`, `1.5`, `NaN`, `Infinity`, `1e+300`).
fn js_number(v: f64) -> String {
    js_sys::Number::from(v)
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_else(|_| v.to_string())
}

/// A JS value as an error message shows it: numbers as JS prints them, strings quoted, other
/// values as JSON (cut short) or by their type.
fn shown(v: &JsValue) -> String {
    const MAX: usize = 40;
    let text = if let Some(n) = v.as_f64() {
        return js_number(n);
    } else if let Some(s) = v.as_string() {
        format!("{s:?}")
    } else if v.is_undefined() {
        return "undefined".into();
    } else {
        match js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()) {
            Some(s) => s,
            None => return format!("a {}", v.js_typeof().as_string().unwrap_or_default()),
        }
    };
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn js_err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// A JS number as an item id: a non-negative integer. Whether the catalogue has it is the
/// recommender's to say, except beyond u32, which no catalogue reaches.
fn item_id(v: f64, n_items: usize) -> Result<u32, JsError> {
    if !(v.fract() == 0.0 && v >= 0.0) {
        return Err(JsError::new(&format!(
            "item id {} is not a non-negative integer",
            js_number(v)
        )));
    }
    if v > u32::MAX as f64 {
        return Err(js_err(crate::Error::Request(format!(
            "unknown item id {}: ids run from 1 to {n_items}",
            js_number(v)
        ))));
    }
    Ok(v as u32)
}

/// Reads a JS array of item ids, refusing anything that is not a whole number.
fn session_from_js(session: JsValue, n_items: usize) -> Result<Vec<u32>, JsError> {
    let values: Vec<f64> = serde_wasm_bindgen::from_value(session)
        .map_err(|e| JsError::new(&format!("session must be an array of item ids: {e}")))?;
    values.into_iter().map(|v| item_id(v, n_items)).collect()
}

/// Reads `k`: a whole number; 0 is left to [`topk::check_k`], and any k beyond the catalogue
/// (1e9, 1e300) means every candidate.
fn k_from_js(k: &JsValue) -> Result<usize, JsError> {
    match k.as_f64() {
        // `as` saturates: 1e300 becomes usize::MAX, which the top-k clamps to the catalogue.
        Some(v) if v.fract() == 0.0 && v >= 0.0 => Ok(v as usize),
        _ => Err(JsError::new(&format!(
            "k must be a positive integer, got {}",
            shown(k)
        ))),
    }
}

/// A JS number narrowed to f32; a finite one that does not fit is refused rather than made
/// infinite. NaN and infinities pass through to the checks that refuse them with their rule.
fn f32_from_js(v: f64, name: impl FnOnce() -> String) -> Result<f32, JsError> {
    let x = v as f32;
    if v.is_finite() && !x.is_finite() {
        return Err(JsError::new(&format!(
            "{} is {}, beyond the float32 range (±3.4e38)",
            name(),
            js_number(v)
        )));
    }
    Ok(x)
}

/// `tailWeight`: absent (undefined or null) is 0; otherwise a number, checked by
/// `recommend_with` (finite, at least 0).
fn tail_weight_from_js(w: &JsValue) -> Result<f32, JsError> {
    if w.is_undefined() || w.is_null() {
        return Ok(0.0);
    }
    match w.as_f64() {
        Some(v) => f32_from_js(v, || "tail weight".into()),
        None => Err(JsError::new(&format!(
            "tail weight must be a finite number of at least 0, got {}",
            shown(w)
        ))),
    }
}

/// `includeSession`: absent is false; otherwise a boolean, not anything truthy.
fn flag_from_js(name: &str, v: &JsValue) -> Result<bool, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(false);
    }
    v.as_bool()
        .ok_or_else(|| JsError::new(&format!("{name} must be true or false, got {}", shown(v))))
}

/// A vector from JS (a `Float32Array`, a `Float64Array` or an array of numbers) as f32 values.
fn floats_from_js(name: &str, v: &JsValue) -> Result<Vec<f32>, JsError> {
    if let Some(a) = v.dyn_ref::<js_sys::Float32Array>() {
        let mut out = zeroed(a.length() as usize, name)?;
        a.copy_to(&mut out);
        return Ok(out);
    }
    let narrow = |i: usize, x: f64| f32_from_js(x, || format!("{name}[{i}]"));
    if let Some(a) = v.dyn_ref::<js_sys::Float64Array>() {
        let mut wide = zeroed(a.length() as usize, name)?;
        a.copy_to(&mut wide);
        return wide
            .into_iter()
            .enumerate()
            .map(|(i, x)| narrow(i, x))
            .collect();
    }
    if let Some(a) = v.dyn_ref::<js_sys::Array>() {
        let mut out = Vec::new();
        out.try_reserve_exact(a.length() as usize)
            .map_err(|_| too_big(name, a.length() as usize))?;
        for (i, x) in a.iter().enumerate() {
            out.push(match x.as_f64() {
                Some(x) => narrow(i, x)?,
                None => {
                    return Err(JsError::new(&format!(
                        "{name}[{i}] must be a finite number, got {}",
                        shown(&x)
                    )))
                }
            });
        }
        return Ok(out);
    }
    Err(JsError::new(&format!(
        "{name} must be an array of numbers or a Float32Array, got {}",
        shown(v)
    )))
}

fn too_big(name: &str, len: usize) -> JsError {
    JsError::new(&format!("{name} of {len} values does not fit in memory"))
}

/// `len` zeroes, or an error where memory runs out (a failed allocation would abort, not panic).
fn zeroed<T: Clone + Default>(len: usize, name: &str) -> Result<Vec<T>, JsError> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| too_big(name, len))?;
    out.resize(len, T::default());
    Ok(out)
}

/// The bundle's bytes from a `Uint8Array` (a Node `Buffer` is one) or an `ArrayBuffer`.
fn bytes_from_js(bytes: &JsValue) -> Result<Vec<u8>, JsError> {
    let array = if let Some(a) = bytes.dyn_ref::<js_sys::Uint8Array>() {
        a.clone()
    } else if let Some(b) = bytes.dyn_ref::<js_sys::ArrayBuffer>() {
        js_sys::Uint8Array::new(b)
    } else {
        return Err(JsError::new(&format!(
            "bundle must be a Uint8Array or ArrayBuffer (the bytes of a .gguf file), got {}",
            shown(bytes)
        )));
    };
    let mut out = zeroed(array.length() as usize, "bundle")?;
    array.copy_to(&mut out);
    Ok(out)
}

#[wasm_bindgen]
impl Recommender {
    /// Loads a bundle (the bytes of a `.gguf` file written by `llmesr export`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] bytes: JsValue,
    ) -> Result<Recommender, JsError> {
        healthy()?;
        let bytes = bytes_from_js(&bytes)?;
        let inner = recommend::Recommender::from_bytes(&bytes).map_err(js_err)?;
        gloo::console::debug!(format!("llm-esr: loaded {} items", inner.n_items()));
        Ok(Recommender {
            inner,
            last_latency_ms: Cell::new(None),
        })
    }

    /// The top `k` items for `session` (an array of item ids, oldest first), as
    /// `[{id, key, title, score, tail, because}]`, best first. `k` is a whole number from 1 up; one
    /// above the catalogue returns every candidate. Session items are left out unless
    /// `includeSession` is true; `tailWeight` (0 by default) re-ranks toward less-popular items.
    pub fn recommend(
        &self,
        session: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] k: JsValue,
        #[wasm_bindgen(js_name = includeSession, unchecked_optional_param_type = "boolean")]
        include_session: JsValue,
        #[wasm_bindgen(js_name = tailWeight, unchecked_optional_param_type = "number")]
        tail_weight: JsValue,
    ) -> Result<JsValue, JsError> {
        healthy()?;
        let start = now_ms();
        let session = session_from_js(session, self.inner.n_items())?;
        let k = k_from_js(&k)?;
        let opts = recommend::Options {
            exclude_session: !flag_from_js("includeSession", &include_session)?,
            tail_weight: tail_weight_from_js(&tail_weight)?,
        };
        let recs = self
            .inner
            .recommend_with(&session, k, opts)
            .map_err(js_err)?;
        let out = serde_wasm_bindgen::to_value(&recs)?;
        if let (Some(a), Some(b)) = (start, now_ms()) {
            self.last_latency_ms.set(Some(b - a));
        }
        Ok(out)
    }

    /// Wall time of the last successful `recommend` call in milliseconds, conversion to JS
    /// included; `undefined` before the first one.
    #[wasm_bindgen(getter, js_name = lastLatencyMs)]
    pub fn last_latency_ms(&self) -> Option<f64> {
        self.last_latency_ms.get()
    }

    /// One catalogue entry: `{id, key, title, popularity, tail}`.
    pub fn item(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] id: JsValue,
    ) -> Result<JsValue, JsError> {
        healthy()?;
        let n = self.inner.n_items();
        let id = match id.as_f64() {
            Some(v) => item_id(v, n)?,
            None => {
                return Err(JsError::new(&format!(
                    "item id {} is not a non-negative integer",
                    shown(&id)
                )))
            }
        };
        let e = self.inner.item(id).map_err(js_err)?;
        Ok(serde_wasm_bindgen::to_value(&ItemView {
            id,
            key: &e.key,
            title: &e.title,
            popularity: e.popularity,
            tail: self.inner.is_tail(id),
            new: e.new,
        })?)
    }

    /// The whole catalogue, in id order.
    pub fn items(&self) -> Result<JsValue, JsError> {
        healthy()?;
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
                new: e.new,
            })
            .collect();
        Ok(serde_wasm_bindgen::to_value(&views)?)
    }

    /// Adds items that were not in training, from their text vectors alone:
    /// `[{key, title, vector}]`, each `vector` the bundle's text model's (an array of numbers or a
    /// `Float32Array`). Returns their ids (the next ones; the old ids do not change). The bundle
    /// must have been exported with `--text-width` and `--new-item-id`; every item is checked
    /// before any is added.
    #[wasm_bindgen(js_name = addItems)]
    pub fn add_items(
        &mut self,
        #[wasm_bindgen(
            unchecked_param_type = "{key: string, title: string, vector: Float32Array | number[]}[]"
        )]
        items: JsValue,
    ) -> Result<Vec<u32>, JsError> {
        healthy()?;
        let Some(list) = items.dyn_ref::<js_sys::Array>() else {
            return Err(JsError::new(&format!(
                "items must be an array of {{key, title, vector}}, got {}",
                shown(&items)
            )));
        };
        let mut out = Vec::with_capacity(list.length() as usize);
        for (i, item) in list.iter().enumerate() {
            let field = |name: &str| {
                js_sys::Reflect::get(&item, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
            };
            let text = |name: &str| -> Result<String, JsError> {
                field(name).as_string().ok_or_else(|| {
                    JsError::new(&format!(
                        "new item {}: {name} must be a string, got {}",
                        i + 1,
                        shown(&field(name))
                    ))
                })
            };
            out.push(recommend::add_items::NewItem {
                key: text("key")?,
                title: text("title")?,
                vector: floats_from_js(&format!("new item {} vector", i + 1), &field("vector"))?,
            });
        }
        self.inner.add_items(&out).map_err(js_err)
    }

    #[wasm_bindgen(getter, js_name = numItems)]
    pub fn num_items(&self) -> usize {
        self.inner.n_items()
    }

    /// The bundle's name, dataset, model configuration, storage types and size:
    /// `{name, dataset, model, tables, encoder, bytes, tableMemoryBytes}`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        healthy()?;
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
        healthy()?;
        let session = session_from_js(session, self.inner.n_items())?;
        self.inner.user_vector(&session).map_err(js_err)
    }

    /// The ids of the `k` best items for a given user vector (a `Float32Array` or an array of
    /// the model's width of finite numbers): the catalogue-scoring half of `recommend`, on its
    /// own, for the benchmark page.
    #[wasm_bindgen(js_name = topKForUser)]
    pub fn top_k_for_user(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] user: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] k: JsValue,
    ) -> Result<Vec<u32>, JsError> {
        healthy()?;
        let user = floats_from_js("user vector", &user)?;
        let k = k_from_js(&k)?;
        let engine = self.inner.engine();
        topk::check_user(&user, engine.user_width()).map_err(js_err)?;
        topk::check_k(k).map_err(js_err)?;
        Ok(engine
            .top_k_for_user(&user, k, &[])
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Every item's vector (views concatenated), dequantized to f32, row `id` at
    /// `id * width`: what a plain-JavaScript scorer needs.
    #[wasm_bindgen(js_name = itemMatrix)]
    pub fn item_matrix(&self) -> Result<Vec<f32>, JsError> {
        healthy()?;
        let e = self.inner.engine();
        let rows = self.inner.n_items() + 1;
        let mut out = Vec::new();
        let len = rows.saturating_mul(e.user_width());
        out.try_reserve_exact(len)
            .map_err(|_| too_big("item matrix", len))?;
        let mut row = Vec::new();
        for id in 0..rows as u32 {
            e.item_vector(id, &mut row);
            out.extend_from_slice(&row);
        }
        Ok(out)
    }
}

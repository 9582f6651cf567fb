//! Building a bundle's text space at export: the items' text-model vectors standardised per
//! dimension (language-model vectors are anisotropic: a few dimensions dominate every cosine),
//! reduced by PCA to the table's width and scaled to unit length; the same map, stored in the
//! bundle, places new items later ([`crate::infer::text`]).

use crate::bundle::{NewItems, TextBoost, TextSpace};
use crate::infer::dense::Dense;
use crate::infer::text::normalise;
use crate::model::names::{TEXT_MAP, TEXT_TABLE};
use crate::semantic::pca::Projection;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// What the export needs to build a text space.
pub struct TextInputs<'a> {
    /// The text model that produced `vectors`.
    pub model: String,
    /// `n_items × dim` text-model vectors, row `i` for item id `i + 1`.
    pub vectors: &'a [f32],
    pub dim: usize,
    /// Rows of the model's item tables (padding, items, BERT4Rec's mask).
    pub rows: usize,
    pub width: usize,
    pub boost: TextBoost,
    /// Recorded in the space when the bundle will carry the maps that place new items.
    pub new_items: Option<NewItems>,
}

/// The text space's manifest entry and tensors (the table and the map), by bundle name.
pub fn build(t: &TextInputs) -> Result<(TextSpace, HashMap<String, Tensor>)> {
    let dim = t.dim;
    let n = t.vectors.len() / dim.max(1);
    if n == 0 || t.vectors.len() != n * dim || t.rows < n + 1 {
        return Err(Error::Config(format!(
            "text space: {} values for {} item rows of width {dim}",
            t.vectors.len(),
            t.rows
        )));
    }
    if t.width == 0 || t.width > dim {
        return Err(Error::Config(format!(
            "text width must be in 1..={dim} (the text model's width), got {}",
            t.width
        )));
    }
    t.boost.validate()?;
    let mut mean = vec![0f64; dim];
    for row in t.vectors.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut var = vec![0f64; dim];
    for row in t.vectors.chunks(dim) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (*v as f64 - m).powi(2) / n as f64;
        }
    }
    // A dimension that never varies carries nothing; a floor keeps its scale finite.
    let scale: Vec<f64> = var.iter().map(|v| 1.0 / v.sqrt().max(1e-6)).collect();
    let z: Vec<f32> = t
        .vectors
        .chunks(dim)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| ((*v as f64 - m) * s) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let pca = Projection::fit(&z, n, dim, t.width)?;
    // y = C·((x − μ)/σ − m) = (C/σ)·x − (C/σ)·μ − C·m, one affine map from the raw vector.
    let mut weight = vec![0f32; t.width * dim];
    let mut bias = vec![0f32; t.width];
    for j in 0..t.width {
        let mut b = 0f64;
        for c in 0..dim {
            let cj = pca.components[j * dim + c] as f64;
            weight[j * dim + c] = (cj * scale[c]) as f32;
            b -= cj * scale[c] * mean[c] + cj * pca.mean[c] as f64;
        }
        bias[j] = b as f32;
    }
    // The rows go through the very map a new item will, so old and new items share one space.
    let map = Dense::from_parts(weight.clone(), Some(bias.clone()), dim, t.width);
    let mut table = vec![0f32; t.rows * t.width];
    let mut row = Vec::new();
    for (i, x) in t.vectors.chunks(dim).enumerate() {
        map.forward(x, &mut row);
        normalise(&mut row);
        table[(i + 1) * t.width..(i + 2) * t.width].copy_from_slice(&row);
    }
    let dev = Device::Cpu;
    let tensors = HashMap::from([
        (
            TEXT_TABLE.to_string(),
            Tensor::from_vec(table, (t.rows, t.width), &dev)?,
        ),
        (
            format!("{TEXT_MAP}.weight"),
            Tensor::from_vec(weight, (t.width, dim), &dev)?,
        ),
        (
            format!("{TEXT_MAP}.bias"),
            Tensor::from_vec(bias, t.width, &dev)?,
        ),
    ]);
    let space = TextSpace {
        model: t.model.clone(),
        input_dim: dim,
        width: t.width,
        boost: t.boost,
        new_items: t.new_items.clone(),
    };
    Ok((space, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unit_and_the_map_places_an_item_where_its_row_is() {
        let (n, dim) = (40, 8);
        let v: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1.0 + (i % dim) as f32))
            .collect();
        let (space, t) = build(&TextInputs {
            model: "m".into(),
            vectors: &v,
            dim,
            rows: n + 2,
            width: 4,
            boost: TextBoost::default(),
            new_items: None,
        })
        .unwrap();
        assert_eq!((space.input_dim, space.width), (dim, 4));
        let table: Vec<Vec<f32>> = t[TEXT_TABLE].to_vec2().unwrap();
        assert!(table[0].iter().all(|&x| x == 0.0) && table[n + 1].iter().all(|&x| x == 0.0));
        let w: Vec<f32> = t["text_map.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = t["text_map.bias"].to_vec1().unwrap();
        let map = Dense::from_parts(w, Some(b), dim, 4);
        for i in [0, 7, n - 1] {
            let norm: f32 = table[i + 1].iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
            let mut placed = Vec::new();
            map.forward(&v[i * dim..(i + 1) * dim], &mut placed);
            normalise(&mut placed);
            assert_eq!(placed, table[i + 1]);
        }
        let wide = build(&TextInputs {
            model: "m".into(),
            vectors: &v,
            dim,
            rows: n + 1,
            width: dim + 1,
            boost: TextBoost::default(),
            new_items: None,
        });
        assert!(wide.unwrap_err().to_string().contains("text width"));
    }
}

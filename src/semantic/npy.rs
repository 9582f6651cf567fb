//! Imports precomputed tables from NumPy `.npy` files, so the reference's matrices (e.g. its
//! `text-embedding-ada-002` item and user tables, `sim_user_100`) can be used as they are after a
//! one-line `numpy.save` of the pickles.

use crate::{Error, Result};
use npyz::{DType, NpyFile, Order, TypeChar};
use std::path::Path;

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::format(path, msg)
}

fn open(path: &Path) -> Result<NpyFile<std::io::Cursor<Vec<u8>>>> {
    let bytes = crate::fsio::read(path)?;
    let f = NpyFile::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(path, format!("not a .npy file: {e}")))?;
    if f.order() == Order::Fortran {
        return Err(bad(
            path,
            "Fortran-ordered arrays are not supported; save with numpy.ascontiguousarray",
        ));
    }
    if f.shape().len() != 2 {
        return Err(bad(
            path,
            format!("expected a 2-D array, got shape {:?}", f.shape()),
        ));
    }
    Ok(f)
}

fn type_of(path: &Path, f: &NpyFile<std::io::Cursor<Vec<u8>>>) -> Result<(TypeChar, u64)> {
    match f.dtype() {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => Err(bad(path, format!("unsupported dtype {other:?}"))),
    }
}

/// A float matrix (`f4` or `f8`) as `(rows, cols, row-major f32 values)`.
pub fn read_matrix(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let f = open(path)?;
    let (rows, cols) = (f.shape()[0] as usize, f.shape()[1] as usize);
    let values: Vec<f32> = match type_of(path, &f)? {
        (TypeChar::Float, 4) => f.into_vec::<f32>().map_err(|e| bad(path, e))?,
        (TypeChar::Float, 8) => f
            .into_vec::<f64>()
            .map_err(|e| bad(path, e))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        (c, s) => {
            return Err(bad(
                path,
                format!("expected float32 or float64 values, got {c:?}{s}"),
            ))
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(path, format!("value {i} is not finite")));
    }
    Ok((rows, cols, values))
}

/// An integer matrix (signed or unsigned, any width) of non-negative indices.
pub fn read_indices(path: &Path) -> Result<(usize, usize, Vec<u32>)> {
    let f = open(path)?;
    let (rows, cols) = (f.shape()[0] as usize, f.shape()[1] as usize);
    let wide: Vec<i64> = match type_of(path, &f)? {
        (TypeChar::Int, 8) => f.into_vec::<i64>().map_err(|e| bad(path, e))?,
        (TypeChar::Int, 4) => f
            .into_vec::<i32>()
            .map_err(|e| bad(path, e))?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 4) => f
            .into_vec::<u32>()
            .map_err(|e| bad(path, e))?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 8) => f
            .into_vec::<u64>()
            .map_err(|e| bad(path, e))?
            .into_iter()
            .map(|v| i64::try_from(v).unwrap_or(-1))
            .collect(),
        (c, s) => return Err(bad(path, format!("expected integer indices, got {c:?}{s}"))),
    };
    let values = wide
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            u32::try_from(v).map_err(|_| bad(path, format!("entry {i} ({v}) is not a valid index")))
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((rows, cols, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_npy(path: &Path, descr: &str, shape: (usize, usize), data: &[u8]) {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
            shape.0, shape.1
        );
        let mut h = header.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h);
        out.extend(data);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn reads_floats_and_indices_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let vals: Vec<u8> = [1.5f64, -2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_npy(&p, "<f8", (2, 2), &vals);
        assert_eq!(read_matrix(&p).unwrap(), (2, 2, vec![1.5, -2.0, 3.0, 4.0]));
        assert!(read_indices(&p)
            .unwrap_err()
            .to_string()
            .contains("integer"));
        let q = dir.path().join("i.npy");
        let idx: Vec<u8> = [0i64, 5, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&q, "<i8", (1, 3), &idx);
        assert!(read_indices(&q).unwrap_err().to_string().contains("(-1)"));
        let r = dir.path().join("junk.npy");
        std::fs::write(&r, b"hello").unwrap();
        assert!(read_matrix(&r)
            .unwrap_err()
            .to_string()
            .contains("not a .npy"));
    }
}

//! The semantic side of LLM-ESR's initialisation: the frozen language-model table and the ID table
//! started from its PCA, written into a freshly built model's variables.

use super::config::{IdInit, TrainConfig};
use crate::data::Dataset;
use crate::model::names::{FROZEN_TABLE, ID_TABLE};
use crate::model::ModelConfig;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// What LLM-ESR training needs beyond the interactions, lined up with the dataset's ids.
pub struct SemanticInputs {
    /// `[n_items, input_dim]`: row `i` is item `i + 1`.
    pub items: Tensor,
    /// Per user, dataset user indices, most similar first.
    pub similar: Vec<Vec<u32>>,
    pub fingerprint: String,
}

impl From<crate::semantic::Aligned> for SemanticInputs {
    fn from(a: crate::semantic::Aligned) -> Self {
        SemanticInputs {
            items: a.items,
            similar: a.similar,
            fingerprint: a.fingerprint,
        }
    }
}

fn set_var(vars: &VarMap, name: &str, value: &Tensor) -> Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    let var = data
        .get(name)
        .ok_or_else(|| Error::Training(format!("the model has no variable {name}")))?;
    if var.dims() != value.dims() {
        return Err(Error::Training(format!(
            "{name} has shape {:?}, the value {:?}",
            var.dims(),
            value.dims()
        )));
    }
    var.set(value)?;
    Ok(())
}

/// Pads a `[n, w]` table with a zero row in front (padding) and, for BERT4Rec, one behind (mask).
fn with_special_rows(table: &Tensor, cfg: &ModelConfig) -> candle_core::Result<Tensor> {
    let w = table.dim(1)?;
    let zero = Tensor::zeros((1, w), table.dtype(), table.device())?;
    let mut parts = vec![&zero, table];
    if cfg.mask_token().is_some() {
        parts.push(&zero);
    }
    Tensor::cat(&parts, 0)
}

/// Sets the frozen semantic table and, unless asked for random init, the PCA-initialised ID table.
pub fn init_semantic(
    vars: &VarMap,
    cfg: &ModelConfig,
    train: &TrainConfig,
    semantic: &SemanticInputs,
) -> Result<()> {
    let Some(sem) = &cfg.semantic else {
        return Ok(());
    };
    let (n, dim) = semantic.items.dims2()?;
    if dim != sem.input_dim {
        return Err(Error::Config(format!(
            "the semantic table is {dim}-dimensional, the model expects {}",
            sem.input_dim
        )));
    }
    if sem.has_semantic_view() {
        set_var(
            vars,
            FROZEN_TABLE,
            &with_special_rows(&semantic.items, cfg)?,
        )?;
    }
    if sem.has_id_view() && train.id_init == IdInit::Pca {
        let flat = semantic.items.flatten_all()?.to_vec1::<f32>()?;
        let pca = crate::semantic::pca::project(&flat, n, dim, cfg.hidden)?;
        let pca = Tensor::from_vec(pca, (n, cfg.hidden), &Device::Cpu)?;
        set_var(vars, ID_TABLE, &with_special_rows(&pca, cfg)?)?;
    }
    Ok(())
}

/// The configs checked, and the semantic inputs an LLM-ESR model trains with checked against the
/// dataset (`None` for a base model).
pub(crate) fn checked_semantic<'a>(
    data: &Dataset,
    model_cfg: &ModelConfig,
    train: &TrainConfig,
    semantic: Option<&'a SemanticInputs>,
) -> Result<Option<&'a SemanticInputs>> {
    model_cfg.validate()?;
    train.validate()?;
    if model_cfg.n_items != data.n_items() {
        return Err(Error::Config(format!(
            "model has {} items, dataset {}",
            model_cfg.n_items,
            data.n_items()
        )));
    }
    let semantic =
        match (&model_cfg.semantic, semantic) {
            (Some(_), None) => return Err(Error::Config(
                "an LLM-ESR model needs semantic embeddings (llmesr embed, then --semantic FILE)"
                    .into(),
            )),
            (None, _) => None,
            (Some(_), Some(s)) => Some(s),
        };
    if let Some(s) = semantic {
        if s.items.dim(0)? != data.n_items() || s.similar.len() != data.n_users() {
            return Err(Error::Config(format!(
                "semantic inputs cover {} items and {} users, the dataset {} and {}",
                s.items.dim(0)?,
                s.similar.len(),
                data.n_items(),
                data.n_users()
            )));
        }
    }
    Ok(semantic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Backbone;

    #[test]
    fn special_rows_are_zero_padding_and_for_bert4rec_a_mask_row() {
        let t = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let sas = with_special_rows(&t, &ModelConfig::sasrec(2)).unwrap();
        assert_eq!(
            sas.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 0.0], vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        let bert = with_special_rows(&t, &ModelConfig::reference(Backbone::Bert4rec, 2)).unwrap();
        assert_eq!(bert.dims(), &[4, 2]);
        assert_eq!(
            bert.get(3).unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn a_variable_of_another_shape_is_refused() {
        let vars = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, candle_core::DType::F32, &Device::Cpu);
        vb.get_with_hints((2, 2), "w", candle_nn::Init::Const(0.0))
            .unwrap();
        let wrong = Tensor::zeros((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = set_var(&vars, "w", &wrong).unwrap_err().to_string();
        assert!(err.contains("w has shape [2, 2]"), "{err}");
        assert!(set_var(&vars, "x", &wrong).is_err());
    }
}

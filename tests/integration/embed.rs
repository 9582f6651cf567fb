//! The text side of LLM-ESR against the real all-MiniLM-L6-v2 (fetched by scripts/fetch-data.sh;
//! the tests skip with a message when it is absent): sensible similarities, unit-length vectors,
//! the cache making a second run free, and `llmesr embed` writing a set that training can align.

use llm_esr::semantic::cache::EmbeddingCache;
use llm_esr::semantic::encoder::TextEncoder;
use npyz::WriterBuilder;
use std::path::Path;

const MODEL: &str = "models/all-minilm-l6-v2";

fn encoder() -> Option<TextEncoder> {
    if !Path::new(MODEL).join("model.safetensors").is_file() {
        eprintln!("skipped: {MODEL} is missing (run scripts/fetch-data.sh)");
        return None;
    }
    Some(TextEncoder::load(Path::new(MODEL)).unwrap())
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_ranks_related_titles_closer_and_caches() {
    let Some(enc) = encoder() else { return };
    assert_eq!(enc.dim(), 384);
    let texts: Vec<String> = [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "Toy Story 2 (1999). Genres: Animation, Children's, Comedy",
        "GoldenEye (1995). Genres: Action, Adventure, Thriller",
        "The cat sits on the mat",
        "Quantum chromodynamics describes the strong interaction",
    ]
    .map(String::from)
    .to_vec();
    let v = enc.embed(&texts).unwrap();
    for row in &v {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    // A sequel is far closer than another film of the same year; unrelated text is near zero.
    let (sequel, other) = (cos(&v[0], &v[1]), cos(&v[0], &v[2]));
    assert!(
        sequel > 0.8 && other < 0.6,
        "sequel {sequel}, other {other}"
    );
    assert!(cos(&v[3], &v[4]).abs() < 0.1);
    // Batching must not change a vector: padding is masked out of the mean.
    let alone = enc.embed(&texts[..1]).unwrap();
    assert!(alone[0]
        .iter()
        .zip(&v[0])
        .all(|(a, b)| (a - b).abs() < 1e-5));

    let dir = tempfile::tempdir().unwrap();
    let mut cache = EmbeddingCache::open(dir.path(), enc.id(), enc.dim()).unwrap();
    let first =
        llm_esr::semantic::build::embed_texts(&enc, &mut cache, &texts, 2, false, "t").unwrap();
    assert_eq!(cache.len(), 5);
    let mut reopened = EmbeddingCache::open(dir.path(), enc.id(), enc.dim()).unwrap();
    // A second run over the same texts is served from disk, identically.
    let again =
        llm_esr::semantic::build::embed_texts(&enc, &mut reopened, &texts, 2, false, "t").unwrap();
    assert_eq!(first, again);
}

#[test]
fn embed_command_writes_a_set_that_lines_up_with_the_dataset() {
    if encoder().is_none() || !Path::new("data/ml-100k/.complete").is_file() {
        eprintln!("skipped: MiniLM or ML-100k missing (run scripts/fetch-data.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.safetensors");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_llmesr"))
        .args([
            "embed",
            "--data",
            "data/ml-100k",
            "--users",
            "mean-items",
            "--quiet",
        ])
        .args(["--cache", dir.path().join("cache").to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let set = llm_esr::semantic::SemanticSet::load(&out).unwrap();
    let raw = llm_esr::data::load_dir(Path::new("data/ml-100k")).unwrap();
    let data = llm_esr::data::Dataset::from_raw(&raw, &Default::default()).unwrap();
    let aligned = set.align(&data).unwrap();
    assert_eq!(aligned.items.dims(), &[data.n_items(), 384]);
    assert_eq!(aligned.similar.len(), data.n_users());
    assert!(aligned.similar.iter().all(|s| s.len() == 100));
    assert!(aligned
        .similar
        .iter()
        .enumerate()
        .all(|(u, s)| !s.contains(&(u as u32))));
    // A damaged file is refused with a clear message.
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&out, bytes).unwrap();
    let err = llm_esr::semantic::SemanticSet::load(&out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum"), "{err}");
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: [u64; 2],
    v: &[T],
) {
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(v.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn npy_import_follows_the_reference_conventions() {
    // Reference layout: integer keys, item row r = item r+1, similar users as 0-based user rows.
    let dir = tempfile::tempdir().unwrap();
    let mut inter = String::new();
    for u in 1..=4 {
        for i in 1..=5 {
            inter += &format!("{u} {}\n", (u + i) % 6 + 1);
        }
    }
    std::fs::write(dir.path().join("inter.txt"), inter).unwrap();
    let raw = llm_esr::data::load_dir(dir.path()).unwrap();
    let data = llm_esr::data::Dataset::from_raw(&raw, &Default::default()).unwrap();
    let items: Vec<f64> = (0..6 * 3).map(|v| v as f64).collect();
    write_npy(&dir.path().join("items.npy"), [6, 3], &items);
    // User row 0 (key "1") is most similar to rows 3, 1, 2; and so on.
    let sim: Vec<i64> = vec![3, 1, 2, 0, 2, 3, 1, 0, 3, 2, 1, 0];
    write_npy(&dir.path().join("sim.npy"), [4, 3], &sim);
    let set = llm_esr::semantic::build::from_npy(
        &data,
        &dir.path().join("items.npy"),
        None,
        None,
        Some(&dir.path().join("sim.npy")),
        100,
    )
    .unwrap();
    let aligned = set.align(&data).unwrap();
    let rows: Vec<Vec<f32>> = aligned.items.to_vec2().unwrap();
    for (id, row) in rows.iter().enumerate() {
        let key: f32 = data.item_keys[id + 1].parse().unwrap();
        assert_eq!(
            row[0],
            (key - 1.0) * 3.0,
            "item {key} reads row {}",
            key - 1.0
        );
    }
    let user = |key: &str| data.user_keys.iter().position(|k| k == key).unwrap() as u32;
    assert_eq!(
        aligned.similar[user("1") as usize],
        vec![user("4"), user("2"), user("3")]
    );
    // An item without a row is refused by name.
    write_npy(&dir.path().join("short.npy"), [2, 3], &items[..6]);
    let err = llm_esr::semantic::build::from_npy(
        &data,
        &dir.path().join("short.npy"),
        None,
        None,
        None,
        3,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no row for item"), "{err}");
}

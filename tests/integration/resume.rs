//! A training run killed with SIGKILL in the middle of an epoch resumes with `--resume` and ends with
//! exactly the weights of an uninterrupted run; what was on disk at the kill is intact. Checked for a
//! base model and for LLM-ESR with the cached teacher (whose cache is part of the resume state), the
//! latter on a semantic set imported from `.npy`. A killed run's progress reads from its resume file
//! and matches the finished run's curve.

use llm_esr::train::curves::Progress;
use npyz::WriterBuilder;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_llmesr");

fn write_data(dir: &Path) {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for u in 0..1500 {
        let mut item = next(80) + 1;
        for _ in 0..(20 + next(30)) {
            writeln!(s, "u{u} i{item}").unwrap();
            item = if next(10) == 0 {
                next(80) + 1
            } else {
                item % 80 + 1
            };
        }
    }
    std::fs::write(dir.join("inter.txt"), s).unwrap();
}

/// An 80 × 40 item table in the reference's `.npy` layout, keyed by `keys.txt`, imported with
/// `llmesr embed --items-npy`; returns the semantic set's path.
fn semantic_set(dir: &Path, data: &Path) -> std::path::PathBuf {
    let values: Vec<f32> = (0..80 * 40)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let npy = dir.join("items.npy");
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[80, 40])
        .writer(std::fs::File::create(&npy).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(values).unwrap();
    w.finish().unwrap();
    let keys: String = (1..=80).map(|i| format!("i{i}\n")).collect();
    std::fs::write(dir.join("keys.txt"), keys).unwrap();
    let out = dir.join("semantic.safetensors");
    let status = Command::new(BIN)
        .args(["embed", "--quiet", "--similar", "20"])
        .arg("--data")
        .arg(data)
        .arg("--items-npy")
        .arg(&npy)
        .arg("--npy-item-keys")
        .arg(dir.join("keys.txt"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

fn train_cmd(data: &Path, out: &Path, extra: &[String]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "train",
        "--quiet",
        "--epochs",
        "5",
        "--patience",
        "10",
        "--max-len",
        "50",
    ])
    .args([
        "--hidden",
        "32",
        "--heads",
        "2",
        "--dropout",
        "0.2",
        "--batch-size",
        "64",
    ])
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra);
    c
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let map = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let mut v: Vec<_> = map
        .into_iter()
        .filter(|(_, t)| t.dtype() == candle_core::DType::F32)
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn sigkill_then_resume_equals_uninterrupted() {
    kill_and_resume(false);
}

#[test]
fn sigkill_then_resume_equals_uninterrupted_for_llmesr_with_cached_teacher() {
    kill_and_resume(true);
}

fn kill_and_resume(llmesr: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_data(&data);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let extra: Vec<String> = if llmesr {
        let set = semantic_set(tmp.path(), &data);
        [
            "--variant",
            "llmesr",
            "--teacher",
            "cached",
            "--bucket",
            "--semantic",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([set.display().to_string()])
        .collect()
    } else {
        Vec::new()
    };
    let train_cmd = |data: &Path, out: &Path| train_cmd(data, out, &extra);

    let status = train_cmd(&data, &a).output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let mut child = train_cmd(&data, &b).spawn().unwrap();
    let resume = b.join("resume.safetensors");
    let t0 = Instant::now();
    while !resume.is_file() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no epoch finished in 2 minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150)); // into the next epoch
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !b.join("run.json").exists(),
        "the run was killed before it finished"
    );
    // What was written before the kill loads.
    assert!(!weights(&b.join("checkpoint.safetensors")).is_empty());
    assert!(!weights(&resume).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".safetensors"))
        .collect();
    // A kill during a save may leave a temporary file, never a torn checkpoint.
    assert!(leftovers.iter().all(|n| n.contains("tmp")), "{leftovers:?}");

    // A killed run's progress is read from its resume file.
    let partial = Progress::load(&b).unwrap();
    assert!(!partial.finished && !partial.epochs.is_empty());
    assert!(partial.epochs.len() < 5);

    let status = train_cmd(&data, &b).arg("--resume").output().unwrap();
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{err}");
    assert!(err.contains("resumed after epoch"), "{err}");
    assert!(!err.contains("resumed after epoch 0"), "{err}");
    assert_eq!(
        weights(&a.join("checkpoint.safetensors")),
        weights(&b.join("checkpoint.safetensors")),
        "resumed run ends with the uninterrupted run's weights"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["outcome"]["epochs"].as_array().unwrap().len(), 5);
    let (pa, pb) = (Progress::load(&a).unwrap(), Progress::load(&b).unwrap());
    assert!(pa.finished && pb.finished);
    let valid = |p: &Progress| p.epochs.iter().map(|l| l.valid_ndcg10).collect::<Vec<_>>();
    assert_eq!(valid(&pa), valid(&pb));
    assert_eq!(
        valid(&pb)[..partial.epochs.len()],
        valid(&partial)[..],
        "the resume file's curve is the finished run's"
    );

    // Resuming with another configuration is refused, naming the file.
    let out = train_cmd(&data, &b)
        .args(["--lr", "0.01", "--resume"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another configuration"));
}

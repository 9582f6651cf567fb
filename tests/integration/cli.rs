//! The command line refuses bad settings before touching data and names bad data precisely.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_llmesr");

/// Runs the CLI, requires success and returns its standard output.
fn succeeds(args: &[&str]) -> Vec<u8> {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_settings_are_refused_before_the_data_is_read() {
    // The data folder does not exist: a config error proves nothing was read first.
    let base = [
        "train",
        "--data",
        "/nonexistent/data",
        "--out",
        "/nonexistent/out",
    ];
    for (flag, value, needle) in [
        ("--epochs", "0", "epochs must be at least 1"),
        ("--max-len", "0", "max_len must be in"),
        ("--dropout", "1.5", "dropout must be in [0, 1)"),
        ("--dropout", "-0.5", "dropout must be in [0, 1)"),
        ("--lr", "-1", "lr must be a positive number"),
        (
            "--distill-weight",
            "-0.1",
            "distill weight must be a non-negative number",
        ),
        ("--batch-size", "0", "batch sizes must be at least 1"),
        ("--heads", "3", "multiple of heads"),
        ("--patience", "0", "patience must be at least 1"),
        ("--tail-item-share", "0", "item tail share"),
        ("--crop", "1.5", "crop must be a share in [0, 1]"),
        (
            "--filter",
            "sometimes",
            "invalid value 'sometimes' for '--filter",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        fails_with(&args, needle);
    }
    fails_with(&base, "/nonexistent/data");
    let mut gru = base.to_vec();
    gru.extend(["--backbone", "gru4rec", "--crop", "0.5"]);
    fails_with(&gru, "--crop applies to SASRec only");
    let mut distilled = base.to_vec();
    distilled.extend([
        "--variant",
        "llmesr",
        "--semantic",
        "/nonexistent/s",
        "--crop",
        "0.5",
    ]);
    fails_with(&distilled, "--crop needs --distill-weight 0");
    // Validation-split rankings choose settings; they never become report rows.
    fails_with(
        &[
            "baseline",
            "--data",
            "/nonexistent/data",
            "--semantic",
            "/nonexistent/s.safetensors",
            "--valid",
            "--report",
            "/nonexistent/r.json",
        ],
        "cannot be used with",
    );
    fails_with(
        &["baseline", "--data", "/nonexistent/data", "--recent", "3"],
        "--semantic",
    );
}

#[test]
fn malformed_data_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.inter"),
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    fails_with(
        &["baseline", "--data", d],
        "x.inter:3: expected 3 tab-separated columns, found 2",
    );

    std::fs::write(
        dir.path().join("x.inter"),
        b"user_id:token\titem_id:token\ttimestamp:float\n1\t\xff\t3\n",
    )
    .unwrap();
    fails_with(&["baseline", "--data", d], "x.inter:2: invalid UTF-8");

    std::fs::write(
        dir.path().join("x.inter"),
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n",
    )
    .unwrap();
    fails_with(
        &["baseline", "--data", d],
        "no user has 3 or more interactions",
    );

    std::fs::write(dir.path().join("x.inter"), "").unwrap();
    fails_with(&["baseline", "--data", d], "empty file");
}

#[test]
fn recommend_reports_bad_bundles_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("s.gguf");
    let b = bundle.to_str().unwrap();
    succeeds(&[
        "synthetic",
        "--items",
        "30",
        "--max-len",
        "8",
        "--hidden",
        "8",
        "--out",
        b,
    ]);
    fails_with(
        &["recommend", "--bundle", b, "--session", "31"],
        "unknown item id 31: ids run from 1 to 30",
    );
    fails_with(
        &["recommend", "--bundle", b, "--session", "1", "--k", "0"],
        "k must be at least 1",
    );
    fails_with(
        &["recommend", "--bundle", b, "--session", "x"],
        "invalid value 'x'",
    );
    let out = succeeds(&[
        "recommend",
        "--bundle",
        b,
        "--session",
        "1,1,2",
        "--k",
        "3",
        "--json",
    ]);
    let recs: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(recs.as_array().unwrap().len(), 3);
    std::fs::write(&bundle, b"GGUF\x03\x00\x00\x00truncated").unwrap();
    fails_with(
        &["recommend", "--bundle", b, "--session", "1"],
        "bundle: corrupt or truncated GGUF header",
    );
}

#[test]
fn quantization_and_serving_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("s.gguf");
    let b = b.to_str().unwrap();
    fails_with(
        &["synthetic", "--items", "30", "--quant", "q5", "--out", b],
        "unknown table type \"q5\"",
    );
    // Q8_0 stores rows in blocks of 32 values: an 8-wide model cannot use it.
    fails_with(
        &[
            "synthetic",
            "--items",
            "30",
            "--hidden",
            "8",
            "--quant",
            "q8",
            "--out",
            b,
        ],
        "multiple of 32",
    );
    succeeds(&[
        "synthetic",
        "--items",
        "30",
        "--max-len",
        "8",
        "--quant",
        "q4",
        "--out",
        b,
    ]);
    fails_with(
        &[
            "recommend",
            "--bundle",
            b,
            "--session",
            "1",
            // A negative number is a value for the flag, not a flag of its own.
            "--tail-weight",
            "-1",
        ],
        "tail weight must be a finite number of at least 0",
    );
    let out = succeeds(&[
        "recommend",
        "--bundle",
        b,
        "--session",
        "1,2",
        "--tail-weight",
        "0.5",
        "--json",
    ]);
    let recs: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(recs.as_array().unwrap().len(), 10);
}

#[test]
fn add_items_and_eval_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("s.gguf");
    let b = bundle.to_str().unwrap();
    succeeds(&[
        "synthetic",
        "--items",
        "30",
        "--max-len",
        "8",
        "--hidden",
        "32",
        "--out",
        b,
    ]);
    let items = dir.path().join("new.item");
    let i = items.to_str().unwrap();
    let out = dir.path().join("out.gguf");
    let o = out.to_str().unwrap();
    let add = ["add-items", "--bundle", b, "--items", i, "--out", o];
    std::fs::write(&items, "").unwrap();
    fails_with(&add, "new.item:1: empty file: no header line");
    std::fs::write(&items, "item_id:token\ttitle:token\n").unwrap();
    fails_with(&add, "no items after the header");
    std::fs::write(&items, "item_id:token\ttitle:token\nn1\tA film\textra\n").unwrap();
    fails_with(
        &add,
        "new.item:2: expected 2 tab-separated columns, found 3",
    );
    std::fs::write(&items, "item_id:token\ttitle:token\nn1\tA film\n").unwrap();
    fails_with(&add, "has no text space");
    assert!(!out.exists(), "nothing written");
    // eval: the validation split is for choosing, not for reports; text settings need a bundle
    // with a text space.
    fails_with(
        &[
            "eval",
            "--bundle",
            b,
            "--data",
            "/nonexistent",
            "--split",
            "valid",
            "--report",
            "r.json",
        ],
        "--report takes test-split rows only",
    );
    fails_with(
        &[
            "eval",
            "--bundle",
            b,
            "--data",
            "/nonexistent",
            "--session-len",
            "0",
        ],
        "--session-len must be at least 1",
    );
    fails_with(&["eval", "--data", "/nonexistent"], "--run <RUN>");
    fails_with(
        &[
            "eval",
            "--bundle",
            b,
            "--data",
            "/x",
            "--protocol",
            "sampled0",
        ],
        "use full or sampledN",
    );
}

#[test]
fn a_preset_sets_its_configuration_and_labels_the_rows() {
    let data = crate::common::synthetic_dir();
    let d = data.path().to_str().unwrap();
    let out = data.path().join("run");
    let o = out.to_str().unwrap();
    let report = data.path().join("rows.json");
    let r = report.to_str().unwrap();
    fails_with(
        &[
            "train",
            "--data",
            d,
            "--out",
            o,
            "--preset",
            "best-base",
            "--dropout",
            "0.2",
        ],
        "cannot be used with",
    );
    let train = [
        "train",
        "--data",
        d,
        "--out",
        o,
        "--preset",
        "best-base",
        "--epochs",
        "1",
        "--max-len",
        "12",
        "--quiet",
        "--report",
        r,
    ];
    succeeds(&train);
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["train"]["preset"], "best-base");
    assert_eq!(run["train"]["loss"], "ce");
    assert_eq!(run["model"]["hidden"], 128);
    assert!((run["model"]["dropout"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|x| x["preset"] == "best-base" && x["loss"] == "ce"));
    // A bundle of the run keeps the name, and `eval` of the bundle labels its rows with it.
    let bundle = data.path().join("b.gguf");
    let b = bundle.to_str().unwrap();
    succeeds(&["export", "--run", o, "--out", b]);
    let again = data.path().join("again.json");
    succeeds(&[
        "eval",
        "--bundle",
        b,
        "--data",
        d,
        "--report",
        again.to_str().unwrap(),
    ]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|x| x["preset"] == "best-base"));
    // The groups of a hold-out, for a model trained without one: the warm users' numbers of a
    // cold-start run get their counterpart on the same users.
    let groups = data.path().join("groups.json");
    succeeds(&[
        "eval",
        "--run",
        o,
        "--data",
        d,
        "--cold-groups",
        "0.2",
        "--cold-seed",
        "3",
        "--protocol",
        "full",
        "--report",
        groups.to_str().unwrap(),
    ]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&groups).unwrap()).unwrap();
    let users = |g: &str| {
        rows.iter()
            .find(|x| x["group"] == g)
            .map(|x| x["users"].as_u64().unwrap())
    };
    let (all, cold, warm) = (users("overall"), users("cold_item"), users("warm_item"));
    assert!(cold.unwrap() > 0 && warm.unwrap() > 0, "{rows:?}");
    assert_eq!(cold.unwrap() + warm.unwrap(), all.unwrap());
    assert!(rows
        .iter()
        .all(|x| x["cold_share"] == 0.2 && x["cold_seed"] == 3));
}

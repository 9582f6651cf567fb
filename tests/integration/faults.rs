//! A full disk and a read-only folder: writes fail with an error that says so, and the previous file
//! survives untouched. Needs root to mount small tmpfs folders; skipped with a message elsewhere.

use llm_esr::fsio::write_atomic;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }

    fn remount_read_only(&self) {
        let s = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn full_disk_and_read_only_folder_keep_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(full) = Mount::tmpfs(&tmp.path().join("full"), "size=64k") else {
        eprintln!("SKIPPED: cannot mount tmpfs here (needs root)");
        return;
    };
    let target = full.0.join("bundle.gguf");
    write_atomic(&target, b"previous").unwrap();
    let err = write_atomic(&target, &vec![7u8; 512 * 1024])
        .unwrap_err()
        .to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("bundle.gguf"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"previous");
    assert_eq!(
        entries(&full.0),
        vec!["bundle.gguf"],
        "no temporary file left"
    );

    let ro = Mount::tmpfs(&tmp.path().join("ro"), "size=64k").unwrap();
    let target = ro.0.join("run.json");
    write_atomic(&target, b"previous").unwrap();
    ro.remount_read_only();
    let err = write_atomic(&target, b"new").unwrap_err().to_string();
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"previous");
}

//! A Python venv for tests that drive Python tools, created once per test binary and kept in the
//! target directory. Shared by the server's horde-sdk test and the worker's numpy-reference tests
//! (included with `#[path]`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `base/name` with `packages` installed; reused while its marker lists the same packages.
pub fn python_venv(base: &Path, name: &str, packages: &[&str]) -> Result<PathBuf, String> {
    // Tests run in parallel threads: one creates the venv, the others wait for it.
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = base.join(name);
    let python = dir.join("bin/python");
    let marker = dir.join(".installed");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .map_err(|e| format!("python3: {e}"))?;
    if !ok.success() {
        return Err("python3 -m venv failed".into());
    }
    let ok = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !ok.success() {
        return Err(format!("pip install {wanted} failed"));
    }
    std::fs::write(&marker, &wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The python of venv `name` under the test's target directory with `packages`, for a test that
/// compares against a Python reference; `None` (the caller skips, saying so) when it cannot be
/// set up, unless CI requires it (HORDE_REQUIRE_COMPAT or HORDE_REQUIRE_MODELS), which makes
/// that a failure.
#[allow(dead_code)]
pub fn reference_python(target_tmp: &Path, name: &str, packages: &[&str]) -> Option<PathBuf> {
    match python_venv(target_tmp, name, packages) {
        Ok(python) => Some(python),
        Err(e) => {
            let required = std::env::var_os("HORDE_REQUIRE_COMPAT").is_some() || std::env::var_os("HORDE_REQUIRE_MODELS").is_some();
            assert!(!required, "could not set up the Python reference venv {name}: {e}");
            eprintln!("skipping: could not set up the Python reference venv {name}: {e}");
            None
        }
    }
}

//! Compatibility: the official `openai` Python package (PyPI) chats and completes, whole and
//! streamed, through the horde's `/v1` API with a worker that streams its text. The test creates
//! its own venv (once, kept in the target dir); without python3 or PyPI it is skipped, unless
//! HORDE_REQUIRE_COMPAT=1 (CI) makes that fail.

mod common;
#[path = "../../compat/python_venv.rs"]
mod python_venv;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{fake_worker, Db};

const OPENAI: &str = "openai==3.51.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client() {
    let python = match python_venv::python_venv(Path::new(env!("CARGO_TARGET_TMPDIR")), "openai-venv", &[OPENAI]) {
        Ok(p) => p,
        Err(e) => {
            assert!(std::env::var("HORDE_REQUIRE_COMPAT").is_err(), "openai client test cannot run: {e}");
            eprintln!("skipping the openai client test: {e}");
            return;
        }
    };
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (key, _) = s.user("openai_py", 100.0, false, false).await;
    let (worker_key, _) = s.user("openai_py_worker", 0.0, false, false).await;
    let stop = fake_worker::spawn(s.client.clone(), s.api(""), worker_key, "m", Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/openai_client.py");
    let url = format!("{}/v1", s.url);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .env("HORDE_OPENAI_URL", url)
            .env("HORDE_KEY", key)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run python")
    })
    .await
    .expect("python task");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openai client failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("openai client: OK"), "{stdout}");
}

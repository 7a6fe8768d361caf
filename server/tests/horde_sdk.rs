//! Compatibility: the unmodified horde-sdk (PyPI, strict models via TESTS_ONGOING=1) drives a text
//! round trip, an image round trip and an alchemy round trip against the real server. The test creates its own venv (once, kept in the target
//! dir); without python3 or PyPI it is skipped, unless HORDE_REQUIRE_COMPAT=1 (CI) makes that fail.

mod common;
#[path = "../../compat/python_venv.rs"]
mod python_venv;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Db, Server};

const HORDE_SDK: &str = "horde-sdk==0.18.0";

fn skip_or_fail(why: &str) {
    assert!(
        std::env::var("HORDE_REQUIRE_COMPAT").is_err(),
        "horde-sdk compatibility test cannot run: {why}"
    );
    eprintln!("skipping the horde-sdk test: {why}");
}

/// A venv with horde-sdk installed, created on first use.
fn venv() -> Result<PathBuf, String> {
    python_venv::python_venv(Path::new(env!("CARGO_TARGET_TMPDIR")), "horde-sdk-venv", &[HORDE_SDK])
}

async fn round_trip(db: Db, script: &str, done: &str) {
    let python = match venv() {
        Ok(p) => p,
        Err(e) => return skip_or_fail(&e),
    };
    let Some(s) = Server::start(db, &["--dev-test-users"]).await else {
        return;
    };
    let (requester, _) = s.user("sdk_requester", 500.0, false, false).await;
    // Trusted: the text round trip founds a team for its worker.
    let (worker, _) = s.user("sdk_worker", 0.0, false, true).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat").join(script);
    let out = Command::new(&python)
        .arg(&script)
        .env("AI_HORDE_URL", format!("{}/api/", s.url))
        .env("TESTS_ONGOING", "1")
        .env("HORDE_SDK_LOG_VERBOSITY", "20")
        .env("HORDE_KEY_REQUESTER", &requester)
        .env("HORDE_KEY_WORKER", &worker)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "horde-sdk round trip failed\nstdout:\n{stdout}\nstderr:\n{}",
        stderr
            .chars()
            .rev()
            .take(6000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    assert!(stdout.contains(done), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_round_trip_sqlite() {
    round_trip(Db::Sqlite, "horde_sdk_roundtrip.py", "horde-sdk round trip: OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_round_trip_postgres() {
    round_trip(Db::Postgres, "horde_sdk_roundtrip.py", "horde-sdk round trip: OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_image_round_trip_sqlite() {
    round_trip(Db::Sqlite, "horde_sdk_image_roundtrip.py", "horde-sdk image round trip: OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_image_round_trip_postgres() {
    round_trip(Db::Postgres, "horde_sdk_image_roundtrip.py", "horde-sdk image round trip: OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_alchemy_round_trip_sqlite() {
    round_trip(Db::Sqlite, "horde_sdk_alchemy_roundtrip.py", "horde-sdk alchemy round trip: OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horde_sdk_alchemy_round_trip_postgres() {
    round_trip(Db::Postgres, "horde_sdk_alchemy_roundtrip.py", "horde-sdk alchemy round trip: OK").await;
}

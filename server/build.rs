//! Points the embedded web site at the folder `scripts/build-site.sh` writes (`target/site`, or
//! `HORDE_SITE_DIR`). When the site is not built, an empty folder stands in: the pages still
//! render on the server but do not hydrate.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=HORDE_SITE_DIR");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let site = std::env::var("HORDE_SITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("..").join("target").join("site"));
    // Re-embed when the site changes, or appears.
    println!("cargo:rerun-if-changed={}", site.display());
    let folder = if site.join("pkg").is_dir() {
        site
    } else {
        let empty = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("no-site");
        std::fs::create_dir_all(&empty).expect("OUT_DIR is writable");
        empty
    };
    let folder = folder.canonicalize().unwrap_or(folder);
    println!("cargo:rustc-env=HORDE_SITE_FOLDER={}", folder.display());
}

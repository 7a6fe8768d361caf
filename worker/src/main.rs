//! `horde-worker`: joins a horde, pops text jobs, generates and submits. Inference is not built
//! yet; this binary only states so.

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("horde-worker {version}");
        return;
    }
    eprintln!("horde-worker {version}: the inference backend is not built yet; no jobs can be served.");
    std::process::exit(2);
}

//! Every block encoding against PyPI `gguf` (pinned below): random blocks — random bytes with
//! sane f16 scales — decoded by our `dequantize_into` equal `gguf.quants.dequantize` exactly,
//! and our matrix products on them (every kernel this CPU has, in rows and in tiles) equal the
//! float64 product of gguf's values within the activations' rounding (see `bound`).
//!
//! The real tensors of Gemma 3 270M Q4_K_M (one of each encoding in the file: Q5_0, Q8_0, Q4_K,
//! Q6_K, F32) multiply like their dequantized values too, prepared as the worker prepares them.
//!
//! Python runs in a venv this test creates (`compat/python_venv.rs`); without Python or PyPI it
//! skips with a message, unless HORDE_REQUIRE_COMPAT=1 makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../compat/python_venv.rs"]
mod python_venv;

mod common;

use horde_worker::gguf::{dequantize_into, Gguf, TensorType};
use horde_worker::matvec::{Isa, Layout, QuantMatrix};

const PACKAGES: [&str; 2] = ["numpy==2.4.6", "gguf==0.19.0"];

fn reference_python() -> Option<PathBuf> {
    python_venv::reference_python(Path::new(env!("CARGO_TARGET_TMPDIR")), "gguf-reference-venv", &PACKAGES)
}

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 16
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() % (1 << 24)) as f32 / (1 << 23) as f32 - 1.0
    }
}

/// Where a block's scale fields lie: (f16 offsets, f32 offsets).
fn scale_fields(kind: TensorType) -> (&'static [usize], &'static [usize]) {
    match kind {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => (&[0], &[]),
        TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4_K | TensorType::Q5_K => (&[0, 2], &[]),
        TensorType::Q2_K => (&[80, 82], &[]),
        TensorType::Q3_K => (&[108], &[]),
        TensorType::Q6_K => (&[208], &[]),
        TensorType::Q8_K => (&[], &[0]),
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => (&[], &[]),
    }
}

/// `rows · cols` values of `kind`: random bytes, with finite scales of a sane size.
fn random_matrix(kind: TensorType, rows: usize, cols: usize, rng: &mut Random) -> Vec<u8> {
    let (per, bytes) = kind.block();
    let n = rows * cols / per;
    match kind {
        TensorType::F32 => (0..n).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        TensorType::F16 => (0..n).flat_map(|_| half::f16::from_f32(rng.unit()).to_le_bytes()).collect(),
        TensorType::BF16 => (0..n).flat_map(|_| half::bf16::from_f32(rng.unit()).to_le_bytes()).collect(),
        _ => {
            let mut raw: Vec<u8> = (0..n * bytes).map(|_| rng.next() as u8).collect();
            let (halves, floats) = scale_fields(kind);
            for block in raw.chunks_exact_mut(bytes) {
                for at in halves {
                    let scale = rng.unit() * 0.05;
                    block[*at..*at + 2].copy_from_slice(&half::f16::from_f32(scale).to_le_bytes());
                }
                for at in floats {
                    let scale = rng.unit() * 0.01;
                    block[*at..*at + 4].copy_from_slice(&scale.to_le_bytes());
                }
            }
            raw
        }
    }
}

fn read_f32(path: &Path) -> Vec<f32> {
    let raw = std::fs::read(path).expect("reference output");
    raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    let raw = std::fs::read(path).expect("reference output");
    raw.chunks_exact(8)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect()
}

/// The largest difference allowed between a kernel's row and the exact product of its values:
/// tiled kernels quantize each block of 32 activations to 16 bits (each moves by at most
/// `max|x| / 32767 / 2`, so the result by that times `Σ|w|` of the block), and every kernel
/// adds in f32 (`1e-5 · Σ|w·x|`).
fn bound(w: &[f32], x: &[f32]) -> f64 {
    let mut b = 0f64;
    for (w, x) in w.chunks_exact(32).zip(x.chunks_exact(32)) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        let sum_w: f64 = w.iter().map(|v| v.abs() as f64).sum();
        let sum_wx: f64 = w.iter().zip(x).map(|(a, b)| (a * b).abs() as f64).sum();
        b += sum_w * amax / 32767.0 / 2.0 + 1e-5 * sum_wx;
    }
    b + 1e-6
}

#[test]
fn every_encoding_decodes_and_multiplies_like_gguf_py() {
    let Some(python) = reference_python() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("quant-blocks");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // 21 rows: a whole tile of 16 and a partial one; 512 columns: two K-quant super-blocks.
    let (rows, cols) = (21, 512);
    let mut rng = Random(0x5eed);
    let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
    std::fs::write(dir.join("x.f32"), x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write x");
    let mut matrices = vec![];
    for kind in TensorType::ALL {
        let raw = random_matrix(kind, rows, cols, &mut rng);
        std::fs::write(dir.join(format!("{}.bin", kind.name())), &raw).expect("write blocks");
        std::fs::write(dir.join(format!("{}.shape", kind.name())), format!("{rows} {cols}")).expect("write shape");
        matrices.push((kind, raw));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/quant_blocks_reference.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .args(TensorType::ALL.map(|k| k.name()))
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .expect("run the reference");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    for (kind, raw) in matrices {
        let name = kind.name();
        let want = read_f32(&dir.join(format!("{name}.values.f32")));
        let mut ours = vec![];
        dequantize_into(kind, &raw, &mut ours);
        assert_eq!(ours.len(), rows * cols, "{name}");
        for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{name} value {i}: ours {a}, gguf {b}"
            );
        }
        let exact = read_f64(&dir.join(format!("{name}.product.f64")));
        let plain = QuantMatrix::new(kind, rows, cols, raw).expect("matrix");
        for m in [plain.clone(), plain.tiled()] {
            for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni] {
                if !isa.available() {
                    continue;
                }
                let mut got = vec![0f32; rows];
                m.matmul_with(isa, &x, &mut got);
                for r in 0..rows {
                    let w = &want[r * cols..][..cols];
                    let allowed = if m.layout() == Layout::Tiles {
                        bound(w, &x)
                    } else {
                        1e-5 * w.iter().zip(&x).map(|(a, b)| (a * b).abs() as f64).sum::<f64>() + 1e-6
                    };
                    let err = (got[r] as f64 - exact[r]).abs();
                    assert!(
                        err <= allowed,
                        "{name} {:?} {isa:?} row {r}: {} vs {} (allowed {allowed})",
                        m.layout(),
                        got[r],
                        exact[r]
                    );
                }
            }
        }
    }
}

#[test]
fn gemma3_tensors_multiply_like_their_values() {
    let Some(path) = common::fetched_model("gemma-3-270m-q4_k_m.gguf", Some("HORDE_GEMMA3_GGUF")) else {
        return;
    };
    let g = Gguf::open(&path).expect("parses");
    let mut seen = vec![];
    let mut rng = Random(0x9e3);
    for info in &g.tensors {
        let [cols, rows] = info.dims[..] else { continue };
        let (rows, cols) = (rows as usize, cols as usize);
        // One matrix per encoding, not the 262144-row embedding when another one exists.
        if seen.contains(&info.kind) || rows > 4096 {
            continue;
        }
        seen.push(info.kind);
        let (_, raw) = g.encoded(&info.name).expect("tensor");
        let mut w = vec![];
        dequantize_into(info.kind, raw, &mut w);
        let m = QuantMatrix::new(info.kind, rows, cols, raw.to_vec()).expect("matrix").prepared();
        let tokens = 3;
        let x: Vec<f32> = (0..tokens * cols).map(|_| rng.unit()).collect();
        let mut got = vec![0f32; tokens * rows];
        m.matmul(&x, &mut got);
        for t in 0..tokens {
            let x = &x[t * cols..][..cols];
            for r in 0..rows {
                let w = &w[r * cols..][..cols];
                let exact: f64 = w.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
                let err = (got[t * rows + r] as f64 - exact).abs();
                assert!(
                    err <= bound(w, x),
                    "{} {:?} token {t} row {r}: {} vs {exact}",
                    info.name,
                    m,
                    got[t * rows + r]
                );
            }
        }
    }
    for kind in [TensorType::Q5_0, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q6_K] {
        assert!(seen.contains(&kind), "no {kind:?} matrix in {}: {seen:?}", path.display());
    }
}

//! One part of a diffusers checkout (`unet/`, `vae/`, `text_encoder/`): its `config.json` and its
//! safetensors weights (f32, f16 or bf16), turned into burn tensors by name on demand, in the
//! float type the models compute in on the checkout's device (`super::compute_dtype`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use safetensors::{Dtype, SafeTensors};

use super::DiffusionError;

/// The bytes of one weight file.
enum Bytes {
    /// A file, mapped (pages the kernel can drop and read again).
    Mapped(memmap2::Mmap),
    /// Made in memory (random weights for benchmarks and tests).
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Range<usize>,
    /// Index into `Checkpoint::files`.
    file: usize,
}

/// The weights of one part.
pub struct Checkpoint {
    /// The weight files.
    files: Vec<Bytes>,
    entries: HashMap<String, Entry>,
    /// Tried before each name when the name itself is missing (`text_model.` in CLIP checkpoints).
    prefixes: Vec<String>,
    pub device: Device,
    /// What `tensor` returns: f16 on GPUs, f32 on the CPU (`super::compute_dtype`).
    dtype: FloatDType,
}

/// The safetensors files of a part: the plain `*.safetensors` ones, else a variant such as
/// `*.fp16.safetensors`, all of them when sharded.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, DiffusionError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DiffusionError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    let plain: Vec<PathBuf> = files
        .iter()
        .filter(|p| p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| !s.contains('.')))
        .cloned()
        .collect();
    let chosen = if plain.is_empty() {
        // One variant only: the first one's variant tag.
        let tag = |p: &PathBuf| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit_once('.'))
                .map(|(_, t)| t.to_string())
        };
        let first = files.first().and_then(tag);
        files.iter().filter(|p| tag(p) == first).cloned().collect()
    } else {
        plain
    };
    if chosen.is_empty() {
        return Err(DiffusionError::Invalid(format!("no .safetensors file in {}", dir.display())));
    }
    Ok(chosen)
}

impl Checkpoint {
    /// The weights of a part's directory (see `weight_files`).
    pub fn open(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        Self::open_files(&weight_files(dir)?, device)
    }

    /// The tensors of these safetensors files, together.
    pub fn open_files(paths: &[PathBuf], device: &Device) -> Result<Self, DiffusionError> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for path in paths {
            let file = std::fs::File::open(path).map_err(|e| DiffusionError::io(path, e))?;
            // SAFETY: the mapping is read-only and lives as long as the checkpoint; a model file
            // changed on disk while it loads is the one way to break it, as with any loader.
            let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| DiffusionError::io(path, e))?;
            let st = SafeTensors::deserialize(&bytes).map_err(|e| DiffusionError::Invalid(format!("{}: {e}", path.display())))?;
            let base = bytes.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - base;
                entries.insert(
                    name,
                    Entry {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: start..start + view.data().len(),
                        file: files.len(),
                    },
                );
            }
            drop(st);
            files.push(Bytes::Mapped(bytes));
        }
        Ok(Self {
            files,
            entries,
            prefixes: Vec::new(),
            device: device.clone(),
            dtype: super::compute_dtype(device),
        })
    }

    /// Tensors made in memory: each name with its shape and f16 values.
    pub fn from_f16(tensors: Vec<(String, Vec<usize>, Vec<half::f16>)>, device: &Device) -> Result<Self, DiffusionError> {
        let mut entries = HashMap::new();
        let mut bytes = Vec::new();
        for (name, shape, values) in tensors {
            if shape.iter().product::<usize>() != values.len() {
                return Err(DiffusionError::Shape {
                    name,
                    expected: format!("{} values", values.len()),
                    found: shape,
                });
            }
            let start = bytes.len();
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            let entry = Entry {
                dtype: Dtype::F16,
                shape,
                bytes: start..bytes.len(),
                file: 0,
            };
            entries.insert(name, entry);
        }
        Ok(Self {
            files: vec![Bytes::Owned(bytes)],
            entries,
            prefixes: Vec::new(),
            device: device.clone(),
            dtype: super::compute_dtype(device),
        })
    }

    /// The same weights, given as `dtype` tensors (f32 on a GPU, to tell f16's rounding from
    /// other differences).
    pub fn with_dtype(mut self, dtype: FloatDType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The float type of the tensors `tensor` returns.
    pub fn dtype(&self) -> FloatDType {
        self.dtype
    }

    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefixes.push(prefix.to_string());
        self
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .get(name)
            .or_else(|| self.prefixes.iter().find_map(|p| self.entries.get(&format!("{p}{name}"))))
    }

    /// How many tensors the checkpoint has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entry(name).map(|e| e.shape.as_slice())
    }

    /// The tensor's values in f32 and its shape.
    pub fn values(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), DiffusionError> {
        let e = self.entry(name).ok_or_else(|| DiffusionError::Missing(name.to_string()))?;
        let raw = &self.files[e.file][e.bytes.clone()];
        let values = match e.dtype {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::U8 => raw.iter().map(|&b| f32::from(b)).collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            other => return Err(DiffusionError::Invalid(format!("{name}: unsupported dtype {other:?}"))),
        };
        Ok((values, e.shape.clone()))
    }

    /// The tensor `name` if the checkpoint has it (an optional bias).
    pub fn optional<const D: usize>(&self, name: &str) -> Result<Option<Tensor<D>>, DiffusionError> {
        if self.contains(name) {
            self.tensor(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The tensor `name`, which must have `D` dimensions, in the checkpoint's float type.
    pub fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<D>, DiffusionError> {
        self.tensor_as(name, self.dtype)
    }

    /// The tensor `name` in f32 whatever the checkpoint's float type (norms' scales and shifts,
    /// which compute in f32).
    pub fn tensor_f32<const D: usize>(&self, name: &str) -> Result<Tensor<D>, DiffusionError> {
        self.tensor_as(name, FloatDType::F32)
    }

    /// The tensor `name`, which must have `D` dimensions, as `dtype`.
    /// f16 weights wanted in f16 (an fp16 checkout on a GPU) go over as they are, without an f32
    /// copy.
    pub fn tensor_as<const D: usize>(&self, name: &str, dtype: FloatDType) -> Result<Tensor<D>, DiffusionError> {
        let e = self.entry(name).ok_or_else(|| DiffusionError::Missing(name.to_string()))?;
        if e.shape.len() != D {
            return Err(DiffusionError::Shape {
                name: name.to_string(),
                expected: format!("{D} dimensions"),
                found: e.shape.clone(),
            });
        }
        let data = if e.dtype == Dtype::F16 && dtype == FloatDType::F16 {
            let raw = &self.files[e.file][e.bytes.clone()];
            let values: Vec<half::f16> = raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect();
            TensorData::new(values, e.shape.clone())
        } else {
            let (values, shape) = self.values(name)?;
            TensorData::new(values, shape)
        };
        Ok(Tensor::from_data(data, (&self.device, DType::from(dtype))))
    }
}

/// Reads and parses `config.json` of a part.
pub fn read_config<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T, DiffusionError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| DiffusionError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| DiffusionError::Invalid(format!("{}: {e}", path.display())))
}

//! A reader for GGUF (v2 and v3) model files: metadata, tensor directory, and dequantization of
//! F32, F16, Q8_0, Q4_0 and Q4_1 tensors to f32.
//!
//! Layout: magic `GGUF`, version u32, tensor count u64, metadata count u64; metadata as
//! (key string, type u32, value); then per tensor (name, n_dims u32, dims u64×n, type u32, offset
//! u64); then the data section, aligned to `general.alignment` (32 by default). Strings are a u64
//! length and UTF-8 bytes. All little-endian. A 2-D tensor lists its dims as `[ne0 = columns,
//! ne1 = rows]` and is stored row-major, i.e. `[rows][columns]`.

use std::collections::HashMap;
use std::path::Path;

use crate::weight_bytes::WeightBytes;

/// Why a file could not be read as GGUF.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    #[error("unsupported GGUF version {0}")]
    Version(u32),
    #[error("truncated GGUF file at byte {0}")]
    Truncated(usize),
    #[error("tensor {name} needs bytes {start}..{end} but the file has {len}: the file is truncated (an interrupted download?)")]
    TruncatedTensor { name: String, start: u64, end: u64, len: usize },
    #[error("invalid GGUF: {0}")]
    Invalid(String),
    #[error("tensor {0} is {1}, an encoding this worker cannot run (it runs F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K)")]
    UnsupportedType(String, String),
    #[error("no tensor named {0}")]
    MissingTensor(String),
    #[error("metadata {0} is missing or has the wrong type")]
    MissingKey(String),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Any integer value as i64.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            Value::U8(v) => v as i64,
            Value::I8(v) => v as i64,
            Value::U16(v) => v as i64,
            Value::I16(v) => v as i64,
            Value::U32(v) => v as i64,
            Value::I32(v) => v as i64,
            Value::U64(v) => i64::try_from(v).ok()?,
            Value::I64(v) => v,
            _ => return None,
        })
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Element encodings of GGUF tensors that this worker runs (ggml's type codes).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

/// ggml's names of its type codes, by code (removed codes are `None`).
const TYPE_NAMES: [Option<&str>; 40] = [
    Some("F32"),
    Some("F16"),
    Some("Q4_0"),
    Some("Q4_1"),
    None,
    None,
    Some("Q5_0"),
    Some("Q5_1"),
    Some("Q8_0"),
    Some("Q8_1"),
    Some("Q2_K"),
    Some("Q3_K"),
    Some("Q4_K"),
    Some("Q5_K"),
    Some("Q6_K"),
    Some("Q8_K"),
    Some("IQ2_XXS"),
    Some("IQ2_XS"),
    Some("IQ3_XXS"),
    Some("IQ1_S"),
    Some("IQ4_NL"),
    Some("IQ3_S"),
    Some("IQ2_S"),
    Some("IQ4_XS"),
    Some("I8"),
    Some("I16"),
    Some("I32"),
    Some("I64"),
    Some("F64"),
    Some("IQ1_M"),
    Some("BF16"),
    Some("Q4_0_4_4"),
    Some("Q4_0_4_8"),
    Some("Q4_0_8_8"),
    Some("TQ1_0"),
    Some("TQ2_0"),
    Some("IQ4_NL_4_4"),
    Some("IQ4_NL_4_8"),
    Some("IQ4_NL_8_8"),
    Some("MXFP4"),
];

/// The name of a ggml type code as llama.cpp prints it (`IQ2_XS`), or `type 77` for a code it
/// does not know either.
pub fn type_name(code: u32) -> String {
    match TYPE_NAMES.get(code as usize).copied().flatten() {
        Some(name) => name.to_string(),
        None => format!("type {code}"),
    }
}

impl TensorType {
    /// Every encoding, in code order.
    pub const ALL: [TensorType; 14] = [
        TensorType::F32,
        TensorType::F16,
        TensorType::Q4_0,
        TensorType::Q4_1,
        TensorType::Q5_0,
        TensorType::Q5_1,
        TensorType::Q8_0,
        TensorType::Q2_K,
        TensorType::Q3_K,
        TensorType::Q4_K,
        TensorType::Q5_K,
        TensorType::Q6_K,
        TensorType::Q8_K,
        TensorType::BF16,
    ];

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// (elements per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            TensorType::F32 => (1, 4),
            TensorType::F16 | TensorType::BF16 => (1, 2),
            TensorType::Q4_0 => (32, 18),
            TensorType::Q4_1 => (32, 20),
            TensorType::Q5_0 => (32, 22),
            TensorType::Q5_1 => (32, 24),
            TensorType::Q8_0 => (32, 34),
            TensorType::Q2_K => (256, 84),
            TensorType::Q3_K => (256, 110),
            TensorType::Q4_K => (256, 144),
            TensorType::Q5_K => (256, 176),
            TensorType::Q6_K => (256, 210),
            TensorType::Q8_K => (256, 292),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q4_0 => 2,
            TensorType::Q4_1 => 3,
            TensorType::Q5_0 => 6,
            TensorType::Q5_1 => 7,
            TensorType::Q8_0 => 8,
            TensorType::Q2_K => 10,
            TensorType::Q3_K => 11,
            TensorType::Q4_K => 12,
            TensorType::Q5_K => 13,
            TensorType::Q6_K => 14,
            TensorType::Q8_K => 15,
            TensorType::BF16 => 30,
        }
    }

    /// ggml's name (`Q4_K`).
    pub fn name(self) -> String {
        type_name(self.code())
    }
}

/// Where a tensor lives in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` varies fastest (columns of a matrix).
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Offset in the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        // Saturating: a crafted directory cannot overflow (the reader refuses huge tensors).
        self.dims.iter().fold(1u64, |n, d| n.saturating_mul(*d)).min(usize::MAX as u64) as usize
    }
    fn byte_len(&self) -> usize {
        let (per, bytes) = self.kind.block();
        self.elements().div_ceil(per) * bytes
    }
    /// Shape in row-major order (slowest first), e.g. `[rows, columns]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|d| *d as usize).collect()
    }
}

/// A GGUF file in memory.
#[derive(Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    bytes: WeightBytes,
    data_start: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(GgufError::Truncated(self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn len(&mut self) -> Result<usize, GgufError> {
        let n = self.u64()?;
        // Nothing in the file can be longer than the file.
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.b.len())
            .ok_or(GgufError::Invalid(format!("length {n} at byte {}", self.pos)))
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| GgufError::Invalid(format!("string at byte {} is not UTF-8", self.pos)))
    }
    fn value(&mut self, kind: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match kind {
            0 => Value::U8(self.arr::<1>()?[0]),
            1 => Value::I8(self.arr::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr()?)),
            3 => Value::I16(i16::from_le_bytes(self.arr()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.arr()?)),
            6 => Value::F32(f32::from_le_bytes(self.arr()?)),
            7 => Value::Bool(self.arr::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth > 4 {
                    return Err(GgufError::Invalid("arrays nested too deep".into()));
                }
                let item = self.u32()?;
                let n = self.len()?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(item, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.arr()?)),
            12 => Value::F64(f64::from_le_bytes(self.arr()?)),
            other => return Err(GgufError::Invalid(format!("unknown metadata type {other}"))),
        })
    }
}

/// IEEE half → single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, mut f) => {
            // Subnormal: normalize.
            let mut e: i32 = 127 - 15 + 1;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

pub use crate::quants::dequantize_into;

impl Gguf {
    /// Maps the file (nothing is read until used) and checks its header and tensor directory.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |e| GgufError::Io(path.display().to_string(), e);
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private. A model file changed on disk while it is
        // served would change the weights under the worker, as with any mapped model file; the
        // worker only ever reads the bytes, so that cannot break memory safety of Rust values
        // built from them (every read goes through bounds-checked slices).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_bytes(WeightBytes::mapped(map))
    }

    /// A GGUF file in memory.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::from_bytes(WeightBytes::from(bytes))
    }

    fn from_bytes(bytes: WeightBytes) -> Result<Self, GgufError> {
        let mut c = Cursor { b: &bytes[..], pos: 0 };
        if c.take(4)? != b"GGUF" {
            return Err(GgufError::BadMagic);
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        let n_tensors = c.len()?;
        let n_kv = c.len()?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let kind = c.u32()?;
            metadata.insert(key, c.value(kind, 0)?);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16));
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()? as usize;
            if n_dims > 4 {
                return Err(GgufError::Invalid(format!("tensor {name} has {n_dims} dims")));
            }
            let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
            let code = c.u32()?;
            let kind = TensorType::from_code(code).ok_or_else(|| GgufError::UnsupportedType(name.clone(), type_name(code)))?;
            let offset = c.u64()?;
            tensors.push(TensorInfo { name, dims, kind, offset });
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_i64).unwrap_or(32).max(1) as usize;
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let file = Self {
            version,
            metadata,
            tensors,
            bytes,
            data_start,
        };
        for t in &file.tensors {
            if t.elements() > (1 << 34) {
                return Err(GgufError::Invalid(format!("tensor {} is too large", t.name)));
            }
            if t.dims.contains(&0) {
                return Err(GgufError::Invalid(format!("tensor {} has an empty dimension {:?}", t.name, t.dims)));
            }
            let per = t.kind.block().0 as u64;
            if t.dims.first().is_some_and(|d| d % per != 0) {
                return Err(GgufError::Invalid(format!(
                    "tensor {}: rows of {} values are not whole {} blocks of {per}",
                    t.name,
                    t.dims[0],
                    t.kind.name()
                )));
            }
            file.range(t)?;
        }
        Ok(file)
    }

    /// Where a tensor's bytes are in the file; a tensor past the end means a truncated file.
    fn range(&self, t: &TensorInfo) -> Result<std::ops::Range<usize>, GgufError> {
        let start = (self.data_start as u64).saturating_add(t.offset);
        let end = start.saturating_add(t.byte_len() as u64);
        if end > self.bytes.len() as u64 {
            return Err(GgufError::TruncatedTensor {
                name: t.name.clone(),
                start,
                end,
                len: self.bytes.len(),
            });
        }
        Ok(start as usize..end as usize)
    }

    fn raw(&self, t: &TensorInfo) -> Result<&[u8], GgufError> {
        Ok(&self.bytes[self.range(t)?])
    }

    /// A tensor's encoded bytes, shared with the file (mapped files are not copied).
    pub fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, WeightBytes), GgufError> {
        let t = self.tensor_info(name).ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        let bytes = self.bytes.slice(self.range(t)?).ok_or(GgufError::Truncated(self.bytes.len()))?;
        Ok((t, bytes))
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's elements as f32, in storage (row-major) order, with its row-major shape.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), GgufError> {
        let (t, raw) = self.encoded(name)?;
        let n = t.elements();
        let mut out = Vec::with_capacity(n);
        dequantize_into(t.kind, raw, &mut out);
        out.truncate(n);
        Ok((out, t.shape()))
    }

    /// A tensor as stored: its directory entry and its encoded bytes.
    pub fn encoded(&self, name: &str) -> Result<(&TensorInfo, &[u8]), GgufError> {
        let t = self.tensor_info(name).ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        Ok((t, self.raw(t)?))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    /// A string array (e.g. the vocabulary).
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let arr = self
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| GgufError::MissingKey(key.into()))?;
        arr.iter()
            .map(|v| v.as_str().ok_or_else(|| GgufError::MissingKey(key.into())))
            .collect()
    }
}

/// Writes GGUF files (for tests and tools): metadata and F32/F16/Q8_0/Q4_1 tensors, quantizing
/// with the same block formats the reader decodes.
pub mod writer {
    use super::{TensorType, Value};

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend(x.to_le_bytes()),
            Value::I16(x) => out.extend(x.to_le_bytes()),
            Value::U32(x) => out.extend(x.to_le_bytes()),
            Value::I32(x) => out.extend(x.to_le_bytes()),
            Value::F32(x) => out.extend(x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::String(s) => string(out, s),
            Value::Array(items) => {
                out.extend(items.first().map(code).unwrap_or(4).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for i in items {
                    value(out, i);
                }
            }
            Value::U64(x) => out.extend(x.to_le_bytes()),
            Value::I64(x) => out.extend(x.to_le_bytes()),
            Value::F64(x) => out.extend(x.to_le_bytes()),
        }
    }

    fn code(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    pub use crate::quants::encode;

    /// A whole GGUF v3 file. Tensors: (name, row-major shape, kind, row-major data).
    pub fn write(metadata: &[(&str, Value)], tensors: &[(&str, Vec<usize>, TensorType, Vec<f32>)]) -> Vec<u8> {
        let encoded: Vec<(&str, Vec<usize>, u32, Vec<u8>)> = tensors
            .iter()
            .map(|(name, shape, kind, data)| (*name, shape.clone(), kind.code(), encode(*kind, data)))
            .collect();
        write_encoded(metadata, &encoded)
    }

    /// A whole GGUF v3 file from tensors already encoded: (name, row-major shape, ggml type code,
    /// bytes). Any code may be written, including ones the reader refuses (for tests).
    pub fn write_encoded(metadata: &[(&str, Value)], tensors: &[(&str, Vec<usize>, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            string(&mut out, k);
            out.extend(code(v).to_le_bytes());
            value(&mut out, v);
        }
        let mut offset = 0u64;
        for (name, shape, kind, bytes) in tensors {
            string(&mut out, name);
            out.extend((shape.len() as u32).to_le_bytes());
            for d in shape.iter().rev() {
                out.extend((*d as u64).to_le_bytes());
            }
            out.extend(kind.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += bytes.len().next_multiple_of(32) as u64;
        }
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        for (_, _, _, bytes) in tensors {
            out.extend(bytes);
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::writer::write;
    use super::*;

    fn sample(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect()
    }

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(f16_to_f32(0x8000), -0.0);
    }

    #[test]
    fn round_trips_metadata_and_every_tensor_type() {
        let data = sample(4 * 64);
        let bytes = write(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(2)),
                ("llama.rope.freq_base", Value::F32(10000.0)),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
                ),
                ("flag", Value::Bool(true)),
            ],
            &[
                ("f32", vec![4, 64], TensorType::F32, data.clone()),
                ("f16", vec![4, 64], TensorType::F16, data.clone()),
                ("q8", vec![4, 64], TensorType::Q8_0, data.clone()),
                ("q41", vec![4, 64], TensorType::Q4_1, data.clone()),
                ("q40", vec![4, 64], TensorType::Q4_0, data.clone()),
            ],
        );
        let g = Gguf::parse(bytes).expect("parses");
        assert_eq!(g.version, 3);
        assert_eq!(g.get_str("general.architecture").ok(), Some("llama"));
        assert_eq!(g.get_i64("llama.block_count").ok(), Some(2));
        assert_eq!(g.get_f64("llama.rope.freq_base").ok(), Some(10000.0));
        assert_eq!(g.get_strings("tokenizer.ggml.tokens").ok(), Some(vec!["a", "b"]));
        assert_eq!(g.get("flag").and_then(Value::as_bool), Some(true));
        assert_eq!(g.tensor_info("q41").map(|t| t.dims.clone()), Some(vec![64, 4]));
        for (name, tol) in [("f32", 0.0), ("f16", 1e-3), ("q8", 0.02), ("q41", 0.14), ("q40", 0.3)] {
            let (got, shape) = g.dequantize(name).expect("dequantizes");
            assert_eq!(shape, vec![4, 64]);
            let err = got.iter().zip(&data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err <= tol, "{name}: max error {err}");
        }
    }

    #[test]
    fn known_block_values() {
        // Q8_0: d = 0.5, q = -2 → -1.0. Q4_1: d = 1, m = -8, low nibble 3 → -5, high nibble 15 → 7.
        let mut q8 = vec![0x00, 0x38];
        q8.extend([254u8; 32]);
        let mut q41 = vec![0x00, 0x3c, 0x00, 0xc8];
        q41.extend([0xf3u8; 16]);
        let mut bytes = write(
            &[],
            &[
                ("q8", vec![32], TensorType::Q8_0, vec![0.0; 32]),
                ("q41", vec![32], TensorType::Q4_1, vec![0.0; 32]),
            ],
        );
        // Data section: the Q8_0 block (34 bytes, padded to 64), then the Q4_1 block (20, padded to 32).
        let start = bytes.len() - 96;
        bytes[start..start + 34].copy_from_slice(&q8);
        bytes[start + 64..start + 84].copy_from_slice(&q41);
        let g = Gguf::parse(bytes).expect("parses");
        assert!(g.dequantize("q8").expect("q8").0.iter().all(|x| *x == -1.0));
        let (q, _) = g.dequantize("q41").expect("q41");
        assert!(q[..16].iter().all(|x| *x == -5.0) && q[16..].iter().all(|x| *x == 7.0), "{q:?}");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(Gguf::parse(b"NOPE".to_vec()), Err(GgufError::BadMagic)));
        assert!(matches!(Gguf::parse(b"GGUF\x09\0\0\0".to_vec()), Err(GgufError::Version(9))));
        let mut bytes = write(&[("k", Value::U32(1))], &[("t", vec![64], TensorType::F32, sample(64))]);
        bytes.truncate(bytes.len() - 10);
        assert!(matches!(Gguf::parse(bytes), Err(GgufError::TruncatedTensor { .. })));
        // A length field larger than the file is rejected, not allocated.
        let mut huge = b"GGUF\x03\0\0\0".to_vec();
        huge.extend(u64::MAX.to_le_bytes());
        assert!(Gguf::parse(huge).is_err());
        assert!(matches!(
            Gguf::parse(write(&[], &[])).map(|g| g.dequantize("x").err()),
            Ok(Some(GgufError::MissingTensor(_)))
        ));
    }
}

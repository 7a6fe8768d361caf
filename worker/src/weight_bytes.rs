//! The bytes of a weight tensor: a range of a memory-mapped model file (nothing copied; the
//! kernel's page cache holds it), or bytes the worker made itself (a regrouped or stacked copy).
//! Cheap to clone: clones share the bytes.

use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

enum Source {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}

/// Shared, read-only bytes of a tensor.
#[derive(Clone)]
pub struct WeightBytes {
    source: Arc<Source>,
    range: Range<usize>,
}

impl WeightBytes {
    /// All of a mapped file.
    pub fn mapped(map: Mmap) -> Self {
        let range = 0..map.len();
        Self {
            source: Arc::new(Source::Mapped(map)),
            range,
        }
    }

    /// A part of these bytes (`range` relative to them); `None` if it reaches past their end.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        if range.start > range.end || range.end > self.range.len() {
            return None;
        }
        Some(Self {
            source: self.source.clone(),
            range: self.range.start + range.start..self.range.start + range.end,
        })
    }

    /// Whether the bytes are a range of a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.source, Source::Mapped(_))
    }

    /// Tells the kernel that these bytes of a mapped file are not needed for now (after the
    /// worker copied them into another layout): their pages leave the process's resident memory
    /// and would be read from the file again if touched. Owned bytes are left as they are.
    pub fn release_pages(&self) {
        if let Source::Mapped(map) = &*self.source {
            #[cfg(unix)]
            {
                // Whole pages inside the range only: neighbours may still be in use.
                let page = 4096;
                let start = self.range.start.div_ceil(page) * page;
                let end = self.range.end / page * page;
                if end > start {
                    // SAFETY: the map is private and read-only, so dropped pages are read from
                    // the file again on the next access; no reference into it is invalidated.
                    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
                }
            }
        }
    }
}

impl From<Vec<u8>> for WeightBytes {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        Self {
            source: Arc::new(Source::Owned(v)),
            range,
        }
    }
}

impl Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.source[self.range.clone()]
    }
}

impl std::fmt::Debug for WeightBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WeightBytes({} bytes{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_and_bound_the_bytes() {
        let all = WeightBytes::from((0u8..100).collect::<Vec<_>>());
        let part = all.slice(10..20).expect("inside");
        assert_eq!(&part[..], &(10u8..20).collect::<Vec<_>>()[..]);
        let inner = part.slice(2..4).expect("inside");
        assert_eq!(&inner[..], &[12, 13]);
        assert!(part.slice(5..11).is_none());
        assert!(!all.is_mapped());
        part.release_pages();
        assert_eq!(part[0], 10);
    }

    #[test]
    fn a_mapped_file_reads_back_after_its_pages_are_released() {
        let path = std::env::temp_dir().join(format!("weight-bytes-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        // SAFETY: the test's own file, not changed while mapped.
        let map = unsafe { Mmap::map(&file) }.expect("map");
        let bytes = WeightBytes::mapped(map);
        assert!(bytes.is_mapped());
        let middle = bytes.slice(100..9000).expect("inside");
        middle.release_pages();
        assert_eq!(&middle[..], &data[100..9000]);
        let _ = std::fs::remove_file(&path);
    }
}

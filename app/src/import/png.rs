//! The character card inside a PNG: a `tEXt` chunk named `ccv3` (card V3) or `chara` (V1/V2)
//! whose text is the card's JSON in base64.

use base64::Engine;

use super::ImportError;

/// The first eight bytes of every PNG.
pub const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The `tEXt` chunks of a PNG: `(keyword, text)`. Stops at the first malformed chunk.
fn text_chunks(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut chunks = Vec::new();
    let mut at = SIGNATURE.len();
    // length (4), type (4), data (length), CRC (4)
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break;
        };
        if kind == b"tEXt" {
            if let Some(nul) = data.iter().position(|&b| b == 0) {
                chunks.push((&data[..nul], &data[nul + 1..]));
            }
        }
        if kind == b"IEND" {
            break;
        }
        at += 12 + len;
    }
    chunks
}

/// The card's JSON: the `ccv3` chunk if there is one (it is the newer), else `chara`.
pub fn card_json(bytes: &[u8]) -> Result<String, ImportError> {
    let chunks = text_chunks(bytes);
    let find = |name: &[u8]| chunks.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let encoded = find(b"ccv3").or_else(|| find(b"chara")).ok_or(ImportError::NoCard)?;
    let encoded: Vec<u8> = encoded.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .map_err(|e| ImportError::BadCard(format!("base64: {e}")))?;
    String::from_utf8(decoded).map_err(|_| ImportError::BadCard("not UTF-8".into()))
}

/// Test helper: a small PNG (1×1 pixel) with the given `tEXt` chunks.
#[cfg(test)]
pub fn png_with_text(chunks: &[(&str, &str)]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = SIGNATURE.to_vec();
    // 1×1, 8-bit greyscale.
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    for (k, v) in chunks {
        let mut data = k.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(v.as_bytes());
        chunk(&mut out, b"tEXt", &data);
    }
    // A zlib stream of one row: filter byte 0, pixel 0.
    chunk(&mut out, b"IDAT", &[0x78, 0x01, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn the_card_comes_from_ccv3_before_chara() {
        let png = png_with_text(&[("Comment", "hi"), ("chara", &b64("{\"v\":2}")), ("ccv3", &b64("{\"v\":3}"))]);
        assert_eq!(card_json(&png).expect("card"), "{\"v\":3}");
        let png = png_with_text(&[("chara", &b64("{\"v\":2}"))]);
        assert_eq!(card_json(&png).expect("card"), "{\"v\":2}");
    }

    #[test]
    fn a_png_without_a_card_or_with_a_broken_one_says_so() {
        assert_eq!(card_json(&png_with_text(&[("Comment", "x")])), Err(ImportError::NoCard));
        assert!(matches!(
            card_json(&png_with_text(&[("chara", "%%%")])),
            Err(ImportError::BadCard(_))
        ));
        // Cut short: no panic, no card.
        let png = png_with_text(&[("chara", &b64("{}"))]);
        assert_eq!(card_json(&png[..20]), Err(ImportError::NoCard));
    }
}

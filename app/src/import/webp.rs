//! The character card inside a WEBP, as TavernAI and SillyTavern wrote and read them: the card's
//! JSON in the EXIF `UserComment` tag (in the Exif IFD, or in IFD0 where a writer put it there),
//! either as text (after EXIF's 8-byte character-code prefix, when there is one), as its UTF-8
//! bytes listed with commas (how those readers sometimes see it), or in base64 as in PNG
//! cards; failing that, a `chara` property in the file's XMP packet.

use base64::Engine;

use super::ImportError;

/// Whether the bytes are a WEBP file (`RIFF`, size, `WEBP`).
pub fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
}

/// The chunks of a WEBP: `(fourcc, data)`. Stops at the first malformed chunk.
fn chunks(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut at = 12;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break;
        };
        out.push((&header[..4], data));
        // Chunks are padded to an even length.
        at += 8 + len + (len & 1);
    }
    out
}

/// The card's JSON, from the EXIF user comment or the XMP packet.
pub fn card_json(bytes: &[u8]) -> Result<String, ImportError> {
    let chunks = chunks(bytes);
    let exif = chunks
        .iter()
        .filter(|(kind, _)| *kind == b"EXIF")
        .find_map(|(_, data)| user_comment(data));
    let xmp = || {
        chunks
            .iter()
            .filter(|(kind, _)| *kind == b"XMP ")
            .find_map(|(_, data)| xmp_chara(&String::from_utf8_lossy(data)))
    };
    let text = exif.or_else(xmp).ok_or(ImportError::NoWebpCard)?;
    card_text(&text)
}

/// A TIFF structure's byte order.
#[derive(Clone, Copy)]
struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.bytes.get(at..at + 2)?;
        Some(if self.little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.bytes.get(at..at + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// The value of `tag` in the IFD at `ifd`: its bytes (inline when 4 or fewer).
    fn field(&self, ifd: usize, tag: u16) -> Option<&[u8]> {
        let count = self.u16(ifd)? as usize;
        (0..count.min(512)).find_map(|i| {
            let entry = ifd + 2 + i * 12;
            if self.u16(entry)? != tag {
                return None;
            }
            let size = match self.u16(entry + 2)? {
                // BYTE, ASCII, SBYTE, UNDEFINED: 1 byte each; SHORT 2; LONG 4.
                1 | 2 | 6 | 7 => 1,
                3 => 2,
                _ => 4,
            } * self.u32(entry + 4)? as usize;
            if size <= 4 {
                self.bytes.get(entry + 8..entry + 8 + size)
            } else {
                let at = self.u32(entry + 8)? as usize;
                self.bytes.get(at..at.checked_add(size)?)
            }
        })
    }
}

const USER_COMMENT: u16 = 0x9286;
const EXIF_IFD: u16 = 0x8769;

/// The EXIF `UserComment` as text: in the Exif IFD, else in IFD0.
fn user_comment(exif: &[u8]) -> Option<String> {
    let exif = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let little = match exif.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let tiff = Tiff { bytes: exif, little };
    let ifd0 = tiff.u32(4)? as usize;
    let in_exif_ifd = tiff
        .field(ifd0, EXIF_IFD)
        .and_then(|b| Tiff { bytes: b, little }.u32(0))
        .and_then(|at| tiff.field(at as usize, USER_COMMENT));
    let raw = in_exif_ifd.or_else(|| tiff.field(ifd0, USER_COMMENT))?;
    let text = match raw.split_at_checked(8) {
        Some((b"UNICODE\0", rest)) => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| {
                    if little {
                        u16::from_le_bytes([c[0], c[1]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        Some((b"ASCII\0\0\0" | b"\0\0\0\0\0\0\0\0", rest)) => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(raw).into_owned(),
    };
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string();
    (!text.is_empty()).then_some(text)
}

/// A `chara` property of an XMP packet: `chara="…"` or `<…:chara>…</…:chara>`.
fn xmp_chara(xmp: &str) -> Option<String> {
    let at = xmp.find("chara")? + "chara".len();
    let rest = &xmp[at..];
    let value = if let Some(v) = rest.strip_prefix("=\"") {
        v.split('"').next()?
    } else {
        rest.split_once('>')?.1.split('<').next()?
    };
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The card's JSON from the stored text: JSON itself, its UTF-8 bytes as numbers with commas,
/// or base64.
fn card_text(text: &str) -> Result<String, ImportError> {
    let text = text.trim();
    if text.starts_with('{') {
        return Ok(text.to_string());
    }
    let bytes = if text.bytes().all(|b| b.is_ascii_digit() || b == b',' || b.is_ascii_whitespace()) {
        text.split(',')
            .map(|n| n.trim().parse::<u8>())
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| ImportError::BadCard(format!("byte list: {e}")))?
    } else {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| ImportError::BadCard(format!("base64: {e}")))?
    };
    String::from_utf8(bytes).map_err(|_| ImportError::BadCard("not UTF-8".into()))
}

/// Test helper: a WEBP (its image data a stub) with an EXIF chunk whose user comment is
/// `comment` (the raw tag value), in the Exif IFD or in IFD0, little-endian.
#[cfg(test)]
pub fn webp_with_comment(comment: &[u8], in_exif_ifd: bool) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    let entry = |tiff: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    };
    // IFD0 (at 8): one entry, then the next-IFD offset (0); then the Exif IFD, then the value.
    let exif_ifd = 8 + 2 + 12 + 4;
    let value_at = if in_exif_ifd { exif_ifd + 2 + 12 + 4 } else { exif_ifd };
    tiff.extend_from_slice(&1u16.to_le_bytes());
    if in_exif_ifd {
        entry(&mut tiff, EXIF_IFD, 4, 1, exif_ifd as u32);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes());
    }
    entry(&mut tiff, USER_COMMENT, 7, comment.len() as u32, value_at as u32);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(comment);
    let mut body = b"WEBP".to_vec();
    for (kind, data) in [(&b"VP8L"[..], &[0x2f, 0, 0, 0, 0][..]), (&b"EXIF"[..], &tiff[..])] {
        body.extend_from_slice(kind);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"{"name":"Ada","first_mes":"Hello.","description":"A clockmaker."}"#;

    #[test]
    fn the_card_is_read_from_the_user_comment_in_every_way_it_is_written() {
        let utf16: Vec<u8> = b"UNICODE\0"
            .iter()
            .copied()
            .chain(CARD.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let listed = CARD.bytes().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
        let b64 = base64::engine::general_purpose::STANDARD.encode(CARD);
        let cases: [(Vec<u8>, bool); 5] = [
            (CARD.as_bytes().to_vec(), false),
            ([b"ASCII\0\0\0".as_slice(), CARD.as_bytes()].concat(), true),
            (utf16, true),
            ([b"\0\0\0\0\0\0\0\0".as_slice(), listed.as_bytes()].concat(), true),
            (b64.into_bytes(), false),
        ];
        for (comment, in_exif_ifd) in cases {
            let file = webp_with_comment(&comment, in_exif_ifd);
            assert!(is_webp(&file));
            assert_eq!(card_json(&file).as_deref(), Ok(CARD), "{:?}", String::from_utf8_lossy(&comment));
        }
    }

    #[test]
    fn xmp_is_the_fallback_and_a_webp_without_a_card_says_so() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(CARD);
        assert_eq!(
            xmp_chara(&format!(r#"<rdf:Description tavern:chara="{b64}"/>"#)).as_deref(),
            Some(b64.as_str())
        );
        assert_eq!(
            xmp_chara(&format!("<tavern:chara>{b64}</tavern:chara>")).as_deref(),
            Some(b64.as_str())
        );
        let mut file = b"RIFF\0\0\0\0WEBP".to_vec();
        let xmp = format!("<x:xmpmeta><rdf:Description chara=\"{b64}\"/></x:xmpmeta>");
        file.extend_from_slice(b"XMP ");
        file.extend_from_slice(&(xmp.len() as u32).to_le_bytes());
        file.extend_from_slice(xmp.as_bytes());
        assert_eq!(card_json(&file).as_deref(), Ok(CARD));
        assert_eq!(card_json(b"RIFF\0\0\0\0WEBPVP8L\x01\0\0\0\0\0"), Err(ImportError::NoWebpCard));
    }
}

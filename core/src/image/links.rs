//! Short-lived capability links to images on this horde: an upload link per job (a worker PUTs
//! its WebP there, as reGen-style workers do with object-store URLs) and a download link per
//! result. A link is `{job id}.{expiry}.{signature}`, signed with a key only this horde knows, so
//! it cannot be forged or turned from a download into an upload.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::{HordeError, Result};

/// What a link allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Upload,
    Download,
}

impl LinkPurpose {
    fn tag(self) -> &'static [u8] {
        match self {
            LinkPurpose::Upload => b"upload",
            LinkPurpose::Download => b"download",
        }
    }
}

/// Signs and checks image links.
#[derive(Clone)]
pub struct ImageLinks {
    key: Vec<u8>,
}

impl std::fmt::Debug for ImageLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageLinks(..)")
    }
}

impl ImageLinks {
    /// Derives the link key from the horde's secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Self::mac(secret);
        mac.update(b"horde image links v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(key: &[u8]) -> Hmac<Sha256> {
        match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    fn signature(&self, purpose: LinkPurpose, job: &Uuid, expires_secs: u64) -> String {
        let mut mac = Self::mac(&self.key);
        mac.update(purpose.tag());
        mac.update(job.as_bytes());
        mac.update(&expires_secs.to_be_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A token for `job`, valid until `expires_secs` (seconds since the epoch).
    pub fn sign(&self, purpose: LinkPurpose, job: &Uuid, expires_secs: u64) -> String {
        format!("{}.{}.{}", job.simple(), expires_secs, self.signature(purpose, job, expires_secs))
    }

    /// The link to `job`'s image for `purpose` under `base` (the horde's public address), valid
    /// until `expires_secs`.
    pub fn url(&self, base: &str, purpose: LinkPurpose, job: &Uuid, expires_secs: u64) -> String {
        format!(
            "{}/api/v2/images/{}",
            base.trim_end_matches('/'),
            self.sign(purpose, job, expires_secs)
        )
    }

    /// The job a token is for, if it is genuine, for `purpose`, and not expired at `now_secs`.
    pub fn verify(&self, purpose: LinkPurpose, token: &str, now_secs: u64) -> Result<Uuid> {
        let mut parts = token.split('.');
        let (Some(job), Some(exp), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(HordeError::InvalidImageLink);
        };
        let job = Uuid::parse_str(job).map_err(|_| HordeError::InvalidImageLink)?;
        let exp: u64 = exp.parse().map_err(|_| HordeError::InvalidImageLink)?;
        let expected = self.signature(purpose, &job, exp);
        // Constant-time comparison of the hex signatures.
        let same = expected.len() == sig.len() && expected.bytes().zip(sig.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same || now_secs > exp {
            return Err(HordeError::InvalidImageLink);
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_only_for_their_purpose_and_time() {
        let links = ImageLinks::new(b"secret");
        let job = Uuid::new_v4();
        let t = links.sign(LinkPurpose::Upload, &job, 1000);
        assert_eq!(links.verify(LinkPurpose::Upload, &t, 999).ok(), Some(job));
        assert!(links.verify(LinkPurpose::Upload, &t, 1001).is_err());
        assert!(links.verify(LinkPurpose::Download, &t, 999).is_err());
        assert!(ImageLinks::new(b"other").verify(LinkPurpose::Upload, &t, 999).is_err());
        let forged = t.replace(".1000.", ".9999.");
        assert!(links.verify(LinkPurpose::Upload, &forged, 999).is_err());
        assert!(links.verify(LinkPurpose::Upload, "garbage", 0).is_err());
    }
}

//! Artifact bytes, content-addressed by SHA-256 (identical bytes are stored once), behind one
//! interface with two backends: a local directory (the default, `<data-dir>/blobs`) and any
//! S3-compatible object store (`--blob-url s3://bucket/prefix`), which several processes on
//! several machines can share.
pub mod local;
pub mod s3;

use sha2::{Digest, Sha256};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::domain::BlobRef;
pub use local::LocalBlobs;
pub use s3::S3Blobs;

/// A stream of an artifact's bytes, for serving.
pub type ByteStream = futures::stream::BoxStream<'static, io::Result<axum::body::Bytes>>;

#[derive(Clone, Debug)]
pub enum BlobStore {
    Local(LocalBlobs),
    S3(S3Blobs),
}

pub fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs a local file-system call off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

impl BlobStore {
    /// The embedded default: files under `<data-dir>/blobs`.
    pub fn new(data_dir: &Path) -> BlobStore {
        BlobStore::Local(LocalBlobs::new(data_dir.join("blobs")))
    }

    /// The store `--blob-url` names (`file:///path` or `s3://bucket/prefix`), or the default;
    /// an S3 bucket is tried once, so a wrong one is said at start-up. Errors are one line and
    /// never repeat credentials.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<BlobStore, String> {
        let bad = |why: &str| format!("--blob-url must be file:///path or s3://bucket/prefix, not \"{}\"{why}", redact(url.unwrap_or("")));
        let Some(url) = url else { return Ok(BlobStore::new(data_dir)) };
        if let Some(path) = url.strip_prefix("file://") {
            return if path.is_empty() { Err(bad("")) } else { Ok(BlobStore::Local(LocalBlobs::new(PathBuf::from(path)))) };
        }
        let Some(rest) = url.strip_prefix("s3://") else { return Err(bad("")) };
        if rest.contains('@') {
            return Err(bad(" (credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL)"));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(""));
        }
        let store = S3Blobs::new(bucket, prefix)?;
        store.probe().await?;
        Ok(BlobStore::S3(store))
    }

    /// Where the bytes live, for logs (no credentials).
    pub fn describe(&self) -> String {
        match self {
            BlobStore::Local(l) => format!("file://{}", l.root().display()),
            BlobStore::S3(s) => s.describe(),
        }
    }

    /// The blob's file, with the local backend.
    pub fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        match self {
            BlobStore::Local(l) => Some(l.path_of(sha256)),
            BlobStore::S3(_) => None,
        }
    }

    /// Stores the bytes (atomic and verified; an existing copy gets a fresh time, see `gc`).
    pub async fn put(&self, bytes: &[u8], media_type: &str) -> io::Result<BlobRef> {
        match self {
            BlobStore::Local(l) => {
                let (l, bytes, media_type) = (l.clone(), bytes.to_vec(), media_type.to_string());
                blocking(move || l.put(&bytes, &media_type)).await
            }
            BlobStore::S3(s) => s.put(bytes, media_type).await,
        }
    }

    /// The blob is there and whole.
    pub async fn intact(&self, blob: &BlobRef) -> bool {
        match self {
            BlobStore::Local(l) => {
                let (l, blob) = (l.clone(), blob.clone());
                blocking(move || Ok(l.intact(&blob))).await.unwrap_or(false)
            }
            BlobStore::S3(s) => s.size(&blob.sha256).await.is_ok_and(|size| size == blob.bytes),
        }
    }

    pub async fn read(&self, blob: &BlobRef) -> io::Result<Vec<u8>> {
        self.read_hash(&blob.sha256).await
    }

    pub async fn read_hash(&self, sha256: &str) -> io::Result<Vec<u8>> {
        match self {
            BlobStore::Local(l) => {
                let (l, sha) = (l.clone(), sha256.to_string());
                blocking(move || l.read_hash(&sha)).await
            }
            BlobStore::S3(s) => s.read_hash(sha256).await,
        }
    }

    /// Every stored blob's hash and size (for garbage collection).
    pub async fn list(&self) -> io::Result<Vec<(String, u64)>> {
        match self {
            BlobStore::Local(l) => {
                let l = l.clone();
                blocking(move || l.list()).await
            }
            BlobStore::S3(s) => s.list().await,
        }
    }

    pub async fn remove(&self, sha256: &str) -> io::Result<()> {
        match self {
            BlobStore::Local(l) => {
                let (l, sha) = (l.clone(), sha256.to_string());
                blocking(move || l.remove(&sha)).await
            }
            BlobStore::S3(s) => s.remove(sha256).await,
        }
    }

    /// When the blob was written (or put again); `None` when it is not there.
    pub async fn modified(&self, sha256: &str) -> Option<SystemTime> {
        match self {
            BlobStore::Local(l) => {
                let (l, sha) = (l.clone(), sha256.to_string());
                blocking(move || Ok(l.modified(&sha))).await.ok().flatten()
            }
            BlobStore::S3(s) => s.modified(sha256).await,
        }
    }

    /// The blob's size, or `NotFound`.
    pub async fn size(&self, sha256: &str) -> io::Result<u64> {
        match self {
            BlobStore::Local(l) => {
                let path = l.path_of(sha256);
                blocking(move || Ok(std::fs::metadata(path)?.len())).await
            }
            BlobStore::S3(s) => s.size(sha256).await,
        }
    }

    /// Some of the blob's bytes, streamed (the local backend serves files itself, with Range).
    pub async fn stream(&self, sha256: &str, span: Range<u64>) -> io::Result<ByteStream> {
        match self {
            BlobStore::Local(_) => {
                let bytes = self.read_hash(sha256).await?;
                let (start, end) = (span.start as usize, (span.end as usize).min(bytes.len()));
                let part = axum::body::Bytes::from(bytes).slice(start.min(end)..end);
                Ok(Box::pin(futures::stream::once(std::future::ready(Ok(part)))))
            }
            BlobStore::S3(s) => s.stream(sha256, span).await,
        }
    }
}

impl super::Engine {
    /// A blob's bytes, from its database row when they are kept there (small blobs, see
    /// `storage::INLINE_BLOB_MAX`), else from the blob store.
    pub async fn blob_bytes(&self, blob: &BlobRef) -> io::Result<Vec<u8>> {
        if blob.bytes <= crate::storage::INLINE_BLOB_MAX
            && let Some(bytes) = self.inline_blob(&blob.sha256).await?
        {
            return Ok(bytes);
        }
        self.blobs.read(blob).await
    }

    /// Every stored blob's hash and size: the blob store's and those kept in rows.
    pub async fn stored_blobs(&self) -> io::Result<Vec<(String, u64)>> {
        let mut all = self.blobs.list().await?;
        let rows = async {
            let mut tx = self.store.read().await?;
            let rows = crate::storage::inline_blob_rows(&mut tx).await;
            let _ = tx.rollback().await;
            rows
        };
        all.extend(rows.await.map_err(io::Error::other)?.into_iter().map(|(sha, bytes, _)| (sha, bytes.max(0) as u64)));
        Ok(all)
    }

    /// The blob's bytes when its database row holds them.
    pub async fn inline_blob(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        let read = async {
            let mut tx = self.store.read().await?;
            let bytes = crate::storage::inline_blob(&mut tx, sha256).await?;
            let _ = tx.rollback().await;
            Ok::<_, crate::storage::StorageError>(bytes)
        };
        read.await.map_err(io::Error::other)
    }
}

/// The URL with anything between the scheme and an `@` hidden.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_blob_urls_are_one_line_and_hide_credentials() {
        let dir = Path::new("/nonexistent");
        for bad in ["", "ftp://x/y", "s3://", "s3:///prefix", "/just/a/path", "file://"] {
            let e = BlobStore::open(Some(bad), dir).await.unwrap_err();
            assert!(e.starts_with("--blob-url must be") && !e.contains('\n'), "{bad}: {e}");
        }
        let e = BlobStore::open(Some("s3://AKIDEXAMPLE:s3cr3tkey@bucket/p"), dir).await.unwrap_err();
        assert!(!e.contains("s3cr3tkey") && !e.contains("AKIDEXAMPLE") && e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        assert!(matches!(BlobStore::open(Some("file:///tmp/x"), dir).await, Ok(BlobStore::Local(_))));
        assert!(matches!(BlobStore::open(None, dir).await.unwrap().local_path("ab12"), Some(p) if p.starts_with("/nonexistent/blobs")));
    }
}

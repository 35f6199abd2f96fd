//! The S3 backend, through `object_store`: one object per blob at `<prefix>/ab/<sha256>`. A PUT
//! is atomic (the object appears whole or not at all) and is verified by its size afterwards;
//! reads are verified against the hash. Endpoint, region and credentials come from the usual
//! AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …).
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{Attribute, Attributes, GetOptions, GetRange, ObjectStore, PutOptions, PutPayload};
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ByteStream;
use crate::domain::BlobRef;

/// An existing object older than this is written again by `put`, so `gc`'s grace period (which
/// reads the object's time) keeps it until the caller's memo row has committed.
const RENEW_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn endpoint_is_http() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().any(|k| std::env::var(k).is_ok_and(|v| v.starts_with("http://")))
}

impl S3Blobs {
    pub fn new(bucket: &str, prefix: &str) -> Result<S3Blobs, String> {
        let store = AmazonS3Builder::from_env().with_bucket_name(bucket).with_allow_http(endpoint_is_http()).build();
        let store = store.map_err(|e| format!("cannot use the S3 bucket {bucket}: {e}"))?;
        Ok(S3Blobs { store: Arc::new(store), bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// One listing, so that a wrong bucket, endpoint or key is said at start-up.
    pub async fn probe(&self) -> Result<(), String> {
        let prefix = self.root();
        match self.store.list_with_delimiter(prefix.as_ref()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot use {}: {}", self.describe(), one_line(&e.to_string()))),
        }
    }

    fn root(&self) -> Option<Key> {
        (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()))
    }

    fn key(&self, sha256: &str) -> Key {
        let shard = &sha256[..2.min(sha256.len())];
        match self.prefix.as_str() {
            "" => Key::from(format!("{shard}/{sha256}")),
            p => Key::from(format!("{p}/{shard}/{sha256}")),
        }
    }

    pub async fn put(&self, bytes: &[u8], media_type: &str) -> io::Result<BlobRef> {
        let blob = BlobRef { sha256: super::hash(bytes), bytes: bytes.len() as u64, media_type: media_type.to_string() };
        let key = self.key(&blob.sha256);
        if let Ok(meta) = self.store.head(&key).await {
            let age = SystemTime::now().duration_since(meta.last_modified.into()).unwrap_or_default();
            if meta.size == blob.bytes && age < RENEW_AFTER {
                return Ok(blob);
            }
        }
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, media_type.to_string().into());
        let options = PutOptions { attributes, ..PutOptions::default() };
        self.store.put_opts(&key, PutPayload::from(bytes.to_vec()), options).await?;
        match self.size(&blob.sha256).await? {
            size if size == blob.bytes => Ok(blob),
            size => Err(io::Error::other(format!("the stored object {} has {size} bytes, not {}", blob.sha256, blob.bytes))),
        }
    }

    pub async fn size(&self, sha256: &str) -> io::Result<u64> {
        Ok(self.store.head(&self.key(sha256)).await?.size)
    }

    pub async fn modified(&self, sha256: &str) -> Option<SystemTime> {
        self.store.head(&self.key(sha256)).await.ok().map(|m| m.last_modified.into())
    }

    /// The bytes, checked against their hash (a damaged object is an error, not wrong bytes).
    pub async fn read_hash(&self, sha256: &str) -> io::Result<Vec<u8>> {
        let bytes = self.store.get(&self.key(sha256)).await?.bytes().await?.to_vec();
        if super::hash(&bytes) != sha256 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the object {sha256} does not match its hash")));
        }
        Ok(bytes)
    }

    pub async fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let metas: Vec<_> = self.store.list(self.root().as_ref()).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                let hashed = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
                (hashed && m.location == self.key(&name)).then_some((name, m.size))
            })
            .collect())
    }

    pub async fn remove(&self, sha256: &str) -> io::Result<()> {
        Ok(self.store.delete(&self.key(sha256)).await?)
    }

    pub async fn stream(&self, sha256: &str, span: Range<u64>) -> io::Result<ByteStream> {
        if span.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let options = GetOptions { range: Some(GetRange::Bounded(span)), ..GetOptions::default() };
        let got = self.store.get_opts(&self.key(sha256), options).await?;
        Ok(got.into_stream().map_err(io::Error::from).boxed())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

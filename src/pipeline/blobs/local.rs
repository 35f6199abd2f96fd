//! The local backend: content-addressed files under `<root>/ab/<sha256>` (the default root is
//! `<data-dir>/blobs`); identical bytes are stored once.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::BlobRef;

#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: PathBuf) -> LocalBlobs {
        LocalBlobs { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    /// Writes the bytes unless a file with their hash already exists; atomic via rename, and
    /// durable before it returns: the file, its new name and a new shard directory are all
    /// fsynced, since the memo row that will point here must never outlive the bytes.
    /// An existing file gets a fresh modification time instead, so `gc`'s grace period keeps it
    /// until the caller's memo row (which makes it live) has committed.
    pub fn put(&self, bytes: &[u8], media_type: &str) -> std::io::Result<BlobRef> {
        let sha256 = super::hash(bytes);
        let path = self.path_of(&sha256);
        let dir = path.parent().expect("blob paths have a parent");
        let reused = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        match reused {
            Ok(()) if self.intact(&BlobRef { sha256: sha256.clone(), bytes: bytes.len() as u64, media_type: String::new() }) => {}
            _ => {
                if !dir.is_dir() {
                    std::fs::create_dir_all(dir)?;
                    sync_dir(&self.root)?;
                }
                let tmp = dir.join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4()));
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                sync_dir(dir)?;
            }
        }
        Ok(BlobRef { sha256, bytes: bytes.len() as u64, media_type: media_type.to_string() })
    }

    /// The file is there and whole (a torn write after a power cut is treated as missing).
    pub fn intact(&self, blob: &BlobRef) -> bool {
        std::fs::metadata(self.path_of(&blob.sha256)).is_ok_and(|m| m.len() == blob.bytes)
    }

    pub fn read(&self, blob: &BlobRef) -> std::io::Result<Vec<u8>> {
        self.read_hash(&blob.sha256)
    }

    pub fn read_hash(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path_of(sha256))
    }

    /// Every stored file's hash and size (for garbage collection).
    pub fn list(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&self.root) else { return Ok(out) };
        for dir in dirs {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(dir.path())? {
                let file = file?;
                let name = file.file_name().to_string_lossy().to_string();
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.push((name, file.metadata()?.len()));
                }
            }
        }
        Ok(out)
    }

    pub fn remove(&self, sha256: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path_of(sha256))
    }

    /// When the file was written (or put again); `None` when it is not there.
    pub fn modified(&self, sha256: &str) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.path_of(sha256)).and_then(|m| m.modified()).ok()
    }
}

/// Makes a directory's entries (a new name, a new subdirectory) survive a power cut.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_bytes_are_stored_once() {
        let dir = std::env::temp_dir().join(format!("reelsmith-blobs-{}", uuid::Uuid::new_v4()));
        let store = LocalBlobs::new(dir.join("blobs"));
        let a = store.put(b"hello", "text/plain").unwrap();
        let b = store.put(b"hello", "text/plain").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.read(&a).unwrap(), b"hello");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn putting_an_existing_blob_again_renews_its_time_and_a_torn_one_is_rewritten() {
        let dir = std::env::temp_dir().join(format!("reelsmith-blobs-{}", uuid::Uuid::new_v4()));
        let store = LocalBlobs::new(dir.join("blobs"));
        let a = store.put(b"frame", "image/png").unwrap();
        let path = store.path_of(&a.sha256);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        store.put(b"frame", "image/png").unwrap();
        let age = std::fs::metadata(&path).unwrap().modified().unwrap().elapsed().unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(60), "the second put renewed the file's time (age {age:?})");
        std::fs::write(&path, b"fr").unwrap();
        store.put(b"frame", "image/png").unwrap();
        assert_eq!(store.read(&a).unwrap(), b"frame", "a torn file is written again");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

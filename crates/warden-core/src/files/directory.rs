//! [`ObjectStore`] on the local file system: `<root>/<org>/<name>`, each object with a
//! sidecar `<root>/<org>/.<name>.sha256`. An upload is written to a temporary file in the
//! same directory and renamed into place only when complete and within its limit, so a
//! reader never sees half an object and a refused body leaves nothing behind.

use std::path::PathBuf;

use futures::StreamExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Body, ObjectStore, StoreError, Stored, hex, valid_name, valid_org};

/// A temporary file removed when dropped, unless disarmed.
struct Partial(Option<PathBuf>);

impl Partial {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn dir(&self, org: &str) -> Result<PathBuf, StoreError> {
        if !valid_org(org) {
            return Err(StoreError::BadName(org.to_string()));
        }
        Ok(self.root.join(org))
    }

    fn paths(&self, org: &str, name: &str) -> Result<(PathBuf, PathBuf), StoreError> {
        if !valid_name(name) {
            return Err(StoreError::BadName(name.to_string()));
        }
        let dir = self.dir(org)?;
        Ok((dir.join(name), dir.join(format!(".{name}.sha256"))))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl ObjectStore for Directory {
    fn put<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
        mut body: Body,
        max: u64,
    ) -> BoxFuture<'a, Result<Stored, StoreError>> {
        Box::pin(async move {
            let (path, sidecar) = self.paths(org, name)?;
            let dir = self.dir(org)?;
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            let mut nonce = [0u8; 8];
            rand::fill(&mut nonce);
            let partial = dir.join(format!(".{name}.{}.partial", hex(&nonce)));
            // Removed unless the upload completes, even if this future is dropped midway.
            let guard = Partial(Some(partial.clone()));
            let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
            let mut hash = Sha256::new();
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StoreError::Body)?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(StoreError::TooLarge(max));
                }
                hash.update(&chunk);
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.sync_all().await.map_err(io)?;
            drop(file);
            let sha256 = hex(&hash.finalize());
            // The object first, then its sidecar (itself renamed into place): a reader never
            // sees a half-written file; the sidecar may lag the object for an instant, which
            // is why downloads and ingests hash what they read.
            tokio::fs::rename(&partial, &path).await.map_err(io)?;
            guard.disarm();
            let side_partial = dir.join(format!(".{name}.{}.sha256.partial", hex(&nonce)));
            tokio::fs::write(&side_partial, format!("{sha256} {size}\n"))
                .await
                .map_err(io)?;
            tokio::fs::rename(&side_partial, &sidecar)
                .await
                .map_err(io)?;
            Ok(Stored {
                name: name.to_string(),
                size,
                sha256,
            })
        })
    }

    fn stat<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let (path, sidecar) = self.paths(org, name)?;
            if !tokio::fs::try_exists(&path).await.map_err(io)? {
                return Ok(None);
            }
            let text = tokio::fs::read_to_string(&sidecar).await.map_err(io)?;
            let mut parts = text.split_whitespace();
            let sha256 = parts.next().unwrap_or_default().to_string();
            let size = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            Ok(Some(Stored {
                name: name.to_string(),
                size,
                sha256,
            }))
        })
    }

    fn read<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let (path, _) = self.paths(org, name)?;
            match tokio::fs::read(&path).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            }
        })
    }

    fn list<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<Stored>, StoreError>> {
        Box::pin(async move {
            let dir = self.dir(org)?;
            let mut out = Vec::new();
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io)? {
                let name = entry.file_name().to_string_lossy().to_string();
                if valid_name(&name)
                    && let Some(s) = self.stat(org, &name).await?
                {
                    out.push(s);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, org: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (path, sidecar) = self.paths(org, name)?;
            for p in [path, sidecar] {
                match tokio::fs::remove_file(&p).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
            }
            Ok(())
        })
    }
}

//! Where results go: standard output, or a temporary file beside the destination that is
//! renamed into place only after everything succeeded, so a failed or interrupted run never
//! leaves a half-written output behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use nzip::{Error, Result};

pub enum Output {
    Stdout(std::io::Stdout),
    File {
        tmp: tempfile::NamedTempFile,
        dest: PathBuf,
        force: bool,
    },
}

impl Output {
    /// Opens `dest` for writing; refuses an existing file unless `force`.
    pub fn file(dest: &Path, force: bool) -> Result<Self> {
        if dest.exists() && !force {
            return Err(Error::OutputExists(dest.to_path_buf()));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".nzip-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        Ok(Output::File {
            tmp,
            dest: dest.to_path_buf(),
            force,
        })
    }

    pub fn stdout() -> Self {
        Output::Stdout(std::io::stdout())
    }

    pub fn writer(&mut self) -> &mut (dyn Write + Send) {
        match self {
            Output::Stdout(s) => s,
            Output::File { tmp, .. } => tmp.as_file_mut(),
        }
    }

    /// Flushes and moves the file into place, with the permissions of `like` (the input, as
    /// gzip does) or read/write for the owner and readable by others.
    pub fn commit(self, like: &Path) -> Result<()> {
        match self {
            Output::Stdout(mut s) => s.flush().map_err(Error::from),
            Output::File { tmp, dest, force } => {
                let permissions = std::fs::metadata(like)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.permissions())
                    .or_else(default_permissions);
                if let Some(p) = permissions {
                    tmp.as_file()
                        .set_permissions(p)
                        .map_err(|e| Error::io(tmp.path(), e))?;
                }
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| Error::io(tmp.path(), e))?;
                let persisted = if force {
                    tmp.persist(&dest)
                } else {
                    tmp.persist_noclobber(&dest)
                };
                persisted.map_err(|e| Error::io(&dest, e.error))?;
                Ok(())
            }
        }
    }
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

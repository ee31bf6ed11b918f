//! Where results go: standard output, or a temporary file beside the destination that is
//! renamed into place only after everything succeeded, so a failed or interrupted run never
//! leaves a half-written output behind. Temporary files are removed on errors (dropped), on
//! SIGINT, SIGTERM and SIGHUP (a handler), but not on SIGKILL, which no process can see:
//! then a hidden `.nzip-*.tmp` stays beside the destination, and the destination is untouched.

use super::{CliResult, Failure};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Temporary files being written; the signal handler removes them before exiting.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_progress() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_PROGRESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs, once, the handler that removes temporary outputs on a termination signal and
/// exits with status 130 (128 + SIGINT, as shells report an interrupted command).
fn remove_outputs_on_signals() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // If a handler cannot be installed, a signal leaves the temporary file (never the
        // destination): not worth refusing to work over.
        let _ = ctrlc::set_handler(|| {
            let paths = in_progress();
            for p in paths.iter() {
                let _ = std::fs::remove_file(p);
            }
            eprintln!("nzip: interrupted; partial output removed");
            std::process::exit(130);
        });
    });
}

/// Keeps a temporary file's path registered while the file exists.
pub struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Self {
        remove_outputs_on_signals();
        in_progress().push(path.to_path_buf());
        Self(path.to_path_buf())
    }

    fn unregister(list: &mut Vec<PathBuf>, path: &Path) {
        list.retain(|p| p != path);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        Self::unregister(&mut in_progress(), &self.0);
    }
}

use nzip::{Error, Result};

pub enum Output {
    Stdout(std::io::Stdout),
    File {
        tmp: tempfile::NamedTempFile,
        dest: PathBuf,
        force: bool,
        registered: Registered,
    },
}

impl Output {
    /// Opens `dest` for writing; refuses an existing file unless `force`.
    pub fn file(dest: &Path, force: bool) -> CliResult<Self> {
        if dest.exists() && !force {
            return Err(Failure::OutputExists(dest.to_path_buf()));
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
        let registered = Registered::new(tmp.path());
        Ok(Output::File {
            tmp,
            dest: dest.to_path_buf(),
            force,
            registered,
        })
    }

    /// The file `dest` (see [`Output::file`]), or standard output for `None`.
    pub fn to(dest: Option<&Path>, force: bool) -> CliResult<Self> {
        match dest {
            Some(d) => Output::file(d, force),
            None => Ok(Output::Stdout(std::io::stdout())),
        }
    }

    /// The output's name in messages.
    pub fn name(&self) -> &Path {
        match self {
            Output::Stdout(_) => Path::new("<stdout>"),
            Output::File { dest, .. } => dest,
        }
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
            Output::Stdout(mut s) => s.flush().map_err(|e| Error::io("<stdout>", e)),
            Output::File {
                tmp,
                dest,
                force,
                registered,
            } => {
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
                // Under the lock, so a signal handler sees the file either still temporary
                // (and removes it) or already in place (and leaves it).
                let mut list = in_progress();
                let persisted = if force {
                    tmp.persist(&dest)
                } else {
                    tmp.persist_noclobber(&dest)
                };
                Registered::unregister(&mut list, &registered.0);
                drop(list);
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

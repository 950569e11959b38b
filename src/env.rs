//! One snapshot of what the run reads from its surroundings: variables, the clock, resolv.conf
//! and the hosts file. Captured once in `main`; tests build it by hand, so nothing below reads
//! `std::env` itself.
//!
//! Also the one way files are opened: [`read_file`] for every input (non-blocking, regular
//! files only, size-bounded, errors naming the file and what it is) and
//! [`create_report_file`] / [`check_report_path`] for the report files, so no path the user
//! or a kubeconfig names (a FIFO, a device, a symlink loop) can hang or swamp the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest configuration file the tool reads (kubeconfig, resolv.conf, CA bundle…):
/// bounded so hostile input cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Where the kubelet mounts a pod's service account (client-go's `rest.InClusterConfig`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub now: SystemTime,
    pub resolv_conf_path: PathBuf,
    pub hosts_path: PathBuf,
    /// Where the pod's service account is mounted (`token`, `ca.crt`, `namespace`): the
    /// standard path in a real run; tests point it at a folder of their own.
    pub service_account_dir: PathBuf,
}

impl Env {
    /// Captures the real process environment.
    pub fn capture(resolv_conf_path: PathBuf, hosts_path: PathBuf) -> Env {
        Env {
            vars: capture_vars(std::env::vars_os()),
            now: SystemTime::now(),
            resolv_conf_path,
            hosts_path,
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }

    /// A non-empty variable's value.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn in_gitlab_ci(&self) -> bool {
        self.var("GITLAB_CI").is_some()
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

/// The variables as text. `std::env::vars` panics on a name or value that is not UTF-8 (any
/// CI variable can hold such bytes): names that are not UTF-8 cannot be ones we read and are
/// dropped; values are kept with U+FFFD for the bytes that are not UTF-8.
fn capture_vars(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> BTreeMap<String, String> {
    vars.filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        Some((name, value.to_string_lossy().into_owned()))
    })
    .collect()
}

/// Why an input file could not be read. `Display` names the path and what was expected;
/// [`FileError::problem`] is the same without the path, for callers that name it themselves.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {}", path.display(), self.problem())]
    NotFound { path: PathBuf },
    #[error("{}: {}", path.display(), self.problem())]
    SymlinkLoop { path: PathBuf },
    #[error("{}: {}", path.display(), self.problem())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: {}", path.display(), self.problem())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: {}", path.display(), self.problem())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// What is wrong with the file, without its path.
    pub fn problem(&self) -> String {
        match self {
            FileError::NotFound { .. } => "no such file".into(),
            FileError::SymlinkLoop { .. } => {
                "symlink loop (the link leads back to itself through other links)".into()
            }
            FileError::NotRegular { kind, .. } => {
                format!("not a regular file ({kind}); only regular files are read")
            }
            FileError::TooLarge { limit, .. } => format!("larger than {limit} bytes; not read"),
            FileError::Io { source, .. } => source.to_string(),
        }
    }

    fn from_io(path: &Path, source: std::io::Error) -> FileError {
        let path = path.to_path_buf();
        match source.raw_os_error() {
            Some(libc::ELOOP) => FileError::SymlinkLoop { path },
            Some(libc::ENOENT) => FileError::NotFound { path },
            _ => FileError::Io { path, source },
        }
    }
}

/// What a file that is not a regular file is, in words.
pub fn file_kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_dir() {
        "a folder"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// Opens with `O_NONBLOCK`, so a FIFO (or a device) at the path cannot block the open, then
/// refuses anything that is not a regular file: the one way input files are opened.
fn open_regular(path: &Path) -> Result<std::fs::File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| FileError::from_io(path, e))?;
    let file_type = file
        .metadata()
        .map_err(|e| FileError::from_io(path, e))?
        .file_type();
    if !file_type.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(file_type),
        });
    }
    Ok(file)
}

/// Reads a regular file of at most `limit` bytes without ever blocking on it: the one reader
/// every input file (kubeconfig, token, CA, require, resolv.conf, hosts, agent configuration)
/// goes through, so none can hang the run or exhaust memory.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::from_io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_file`] with [`MAX_FILE_BYTES`], the error as text naming the path.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    read_file(path, MAX_FILE_BYTES).map_err(|e| e.to_string())
}

/// [`read_file`] as UTF-8 text, the error without the path (the caller names the file).
pub fn read_text(path: &Path, limit: u64) -> Result<String, String> {
    let bytes = read_file(path, limit).map_err(|e| e.problem())?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// Creates (or truncates) a report file without blocking: `O_NONBLOCK` makes a FIFO with no
/// reader fail at once (`ENXIO`) instead of waiting forever, and anything that opens but is not
/// a regular file is refused.
pub fn create_report_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file ({})",
            file_kind(file_type)
        )));
    }
    Ok(file)
}

/// A report path the run can write: empty, or an existing non-regular file (a FIFO, a folder),
/// is the user's mistake, told before anything runs.
pub fn check_report_path(flag: &str, path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err(format!("{flag} needs a file path, got an empty value"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(format!(
            "{flag} {}: not a regular file ({}); give a path to a regular file or a new one",
            path.display(),
            file_kind(meta.file_type())
        )),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(format!("{flag} {}", FileError::from_io(path, e)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_are_not_utf8_do_not_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || std::ffi::OsString::from_vec(vec![0xff, 0xfe]);
        let vars = capture_vars(
            [
                (bad(), "x".into()),
                ("BAD_VALUE".into(), bad()),
                ("GOOD".into(), "ok".into()),
            ]
            .into_iter(),
        );
        assert_eq!(vars.len(), 2);
        assert_eq!(vars["GOOD"], "ok");
        assert_eq!(vars["BAD_VALUE"], "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo on a NUL-terminated path we own; no memory is shared.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_file(&fifo, 10).expect_err("a FIFO is not read");
        assert!(
            err.to_string().contains("not a regular file (a FIFO)"),
            "{err}"
        );
        let err = create_report_file(&fifo).expect_err("nor written");
        assert!(!err.to_string().is_empty());
        assert!(check_report_path("--json", &fifo).is_err());
    }

    #[test]
    fn a_symlink_loop_is_named_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).expect("a -> b");
        std::os::unix::fs::symlink(&a, &b).expect("b -> a");
        let err = read_file(&a, 10).expect_err("loop");
        assert!(matches!(err, FileError::SymlinkLoop { .. }), "{err}");
        assert!(err.to_string().contains("symlink loop"), "{err}");
        let missing = read_file(&dir.path().join("none"), 10).expect_err("missing");
        assert!(missing.to_string().ends_with("no such file"), "{missing}");
    }

    #[test]
    fn files_are_read_up_to_the_limit_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read_file(&path, 5).expect("fits"), b"12345");
        let err = read_file(&path, 4).expect_err("too large");
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
        let err = read_file(dir.path(), 4).expect_err("a folder");
        assert!(err.to_string().contains("(a folder)"), "{err}");
    }
}

//! The data directory's permissions: what the store holds (prompts,
//! memories, conversations, results) is for the user who runs Troupe only.
//!
//! - **The directory** is created 0700 (missing parents with the usual
//!   mode). An existing one that group or others may enter is left as it is
//!   (someone chose that) and warned about at every open, naming the fix.
//! - **sled's files** (`conf`, `db`, `snap.*`, `blobs/*`) are 0600 and its
//!   `blobs/` directory 0700: set at every open for what is there (a data
//!   directory made by an earlier version, files restored from a backup).
//! - **Files sled creates later** (snapshots, blobs) get the same from a
//!   default ACL on the directory (Linux): new entries take
//!   `user::rwx group::--- other::---` from it, masked by the mode sled asks
//!   for (0666 for files), whatever the process umask is. Where the
//!   filesystem keeps no ACLs they follow the umask, still inside a
//!   directory only its owner can enter.
//!
//! Not the umask: it is process-wide, so changing it around sled's open
//! would race every other thread creating files (an embedding service's
//! own included), and sled creates files long after its open.

use std::path::Path;

/// The data directory's mode when the store creates it.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// The mode of sled's files.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates the data directory, owner-only, or warns when an existing one is
/// open to other users; then makes what is created in it later owner-only.
pub(super) fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = format_args!("{mode:o}"),
                        "the data directory {} is open to other users (mode {mode:o}): they can read what the store holds (prompts, memories, conversations, results); fix: chmod 700 {}",
                        dir.display(),
                        dir.display(),
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
                    Ok(()) => {}
                    // Another opener made it meanwhile: it is checked next time.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        #[cfg(target_os = "linux")]
        default_acl(dir);
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Makes sled's files in `dir` owner-only (0600, and 0700 for `blobs/`).
/// A file that cannot be changed (not ours) is warned about, not fatal.
pub(super) fn restrict_sled_files(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name == "blobs" && entry.file_type()?.is_dir() {
            restrict(&path, DIR_MODE);
            for blob in std::fs::read_dir(&path)? {
                restrict(&blob?.path(), FILE_MODE);
            }
        } else if name == "conf" || name == "db" || name.starts_with("snap.") {
            restrict(&path, FILE_MODE);
        }
    }
    Ok(())
}

/// Sets `path`'s mode to `mode` unless it already is.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let result = std::fs::symlink_metadata(path).and_then(|meta| {
        if meta.file_type().is_symlink() || meta.permissions().mode() & 0o777 == mode {
            return Ok(());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    });
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %e, "cannot make a store file owner-only");
    }
}

/// Gives `dir` the default ACL `user::rwx group::--- other::---`, so what
/// is created in it is owner-only whatever the umask. Filesystems without
/// ACLs refuse it; then new files follow the umask (see the module docs).
#[cfg(target_os = "linux")]
fn default_acl(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    // The kernel's xattr form of an ACL: a version, then (tag, permissions,
    // id) entries in tag order; the three base entries need no id or mask.
    const ACL_EA_VERSION: u32 = 2;
    const ACL_USER_OBJ: u16 = 0x01;
    const ACL_GROUP_OBJ: u16 = 0x04;
    const ACL_OTHER: u16 = 0x20;
    const ACL_UNDEFINED_ID: u32 = u32::MAX;
    let mut value = Vec::with_capacity(28);
    value.extend_from_slice(&ACL_EA_VERSION.to_le_bytes());
    for (tag, perm) in [(ACL_USER_OBJ, 7u16), (ACL_GROUP_OBJ, 0), (ACL_OTHER, 0)] {
        value.extend_from_slice(&tag.to_le_bytes());
        value.extend_from_slice(&perm.to_le_bytes());
        value.extend_from_slice(&ACL_UNDEFINED_ID.to_le_bytes());
    }
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `path` and the name are NUL-terminated C strings and `value`
    // is `value.len()` readable bytes, all alive for the call.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"system.posix_acl_default".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(
            dir = %dir.display(),
            error = %std::io::Error::last_os_error(),
            "no default ACL on the data directory: files sled creates later follow the umask"
        );
    }
}

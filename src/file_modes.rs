//! The modes of what tokenwarden keeps under `--data-dir`: the folder is 0700, the files that
//! hold secrets (`keys.json`, the embedded store's database) 0600, so that no other user of
//! the machine can read the signing keys or the refresh-token hashes.
//!
//! Owns: creating the folder 0700; checking an existing folder or file and, when group or
//! others have any bit, warning (the path, the mode found and the mode it becomes) and taking
//! those bits away; refusing to start when that fails (another user owns it, a read-only
//! file system). One exception: a folder another user owns (the mount point of a Kubernetes
//! volume: root's with the pod's `fsGroup`, 2775, or 0777 for an `emptyDir` or a local-path
//! volume) is used with a warning, its files still 0600 and the issuer's own. A folder the issuer may only read ([`check_read_only`]) is not
//! changed. docs/decisions.md, "Standalone mode", says why. Must not create or change
//! anything else in the folder.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The mode of a data folder tokenwarden creates.
pub(crate) const PRIVATE_DIR: u32 = 0o700;
/// The mode of a file with secrets tokenwarden creates.
pub(crate) const PRIVATE_FILE: u32 = 0o600;
/// The bits of group and others.
const OPEN: u32 = 0o077;
/// The bits of group and others to write.
const OPEN_TO_WRITE: u32 = 0o022;
/// The bit of others to write.
const OTHERS_WRITE: u32 = 0o002;

/// Why the data folder or one of its files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileModeError {
    #[error("cannot create the data directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the mode of {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} has mode {found:04o}, open to group or others, and cannot be made {wanted:04o} \
         ({source}): make it {wanted:04o}, or give it to the user the issuer runs as"
    )]
    CannotTighten {
        path: PathBuf,
        found: u32,
        wanted: u32,
        source: std::io::Error,
    },
    #[error(
        "{path} has mode {found:04o}: group or others may write it and so replace the signing \
         keys, and this issuer may not change that; take their write bits away"
    )]
    WritableByOthers { path: PathBuf, found: u32 },
}

/// Creates `dir`, and the folders above it that are missing, with mode 0700. An existing
/// folder is left as it is ([`make_private`] checks it).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), FileModeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .map_err(|source| FileModeError::Create {
            path: dir.to_owned(),
            source,
        })
}

/// Takes group's and others' bits away from `path` (a folder becomes 0700, a file 0600 when
/// its owner may read and write it), with a warning naming the path and both modes. Refuses
/// when they cannot be taken away, except from a folder another user owns (a volume's mount
/// point): that is used, with a warning. Its files stay protected: one that is not the
/// issuer's cannot be made private, so it is refused here, and another user's 0600 file cannot
/// be read.
pub(crate) fn make_private(path: &Path) -> Result<(), FileModeError> {
    let found = mode(path)?;
    if found & OPEN == 0 {
        return Ok(());
    }
    let wanted = found & 0o700;
    if let Err(source) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
        let not_ours = source.kind() == std::io::ErrorKind::PermissionDenied;
        if not_ours && path.is_dir() {
            let others_write = if found & OTHERS_WRITE != 0 {
                "; other users of the machine may delete its files"
            } else {
                ""
            };
            tracing::warn!(
                path = %path.display(),
                found = %format!("{found:04o}"),
                "the data directory belongs to another user (a volume's mount point, say) and \
                 cannot be made 0700; using it, with its files with secrets 0600{others_write}"
            );
            return Ok(());
        }
        return Err(FileModeError::CannotTighten {
            path: path.to_owned(),
            found,
            wanted,
            source,
        });
    }
    tracing::warn!(
        path = %path.display(),
        found = %format!("{found:04o}"),
        now = %format!("{wanted:04o}"),
        "group or others had access to a file with secrets; took it away"
    );
    Ok(())
}

/// For a folder the issuer may only read, and a file in it: nothing is changed. When group or
/// others may write one of them on a file system that is not read-only, it is refused (they
/// could replace the signing keys); when they may only read it, a warning says so and it is
/// used (whoever provides the folder sets its modes: a Kubernetes Secret volume is mounted
/// read-only, its files 0644 unless `defaultMode` says otherwise).
pub(crate) fn check_read_only(
    path: &Path,
    read_only_file_system: bool,
) -> Result<(), FileModeError> {
    let found = mode(path)?;
    if found & OPEN == 0 {
        return Ok(());
    }
    if found & OPEN_TO_WRITE != 0 && !read_only_file_system {
        return Err(FileModeError::WritableByOthers {
            path: path.to_owned(),
            found,
        });
    }
    tracing::warn!(
        path = %path.display(),
        found = %format!("{found:04o}"),
        "group or others may read a file with secrets in a folder this issuer may not change; \
         make it private where it is provided"
    );
    Ok(())
}

/// The permission bits of `path` (following a symbolic link, as a Secret volume's files are).
fn mode(path: &Path) -> Result<u32, FileModeError> {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|source| FileModeError::Stat {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_new_data_directory_and_its_missing_parents_are_0700() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/b");
        create_private_dir(&dir).expect("created");
        assert_eq!(mode(&dir).expect("mode") & 0o777, PRIVATE_DIR);
        assert_eq!(
            mode(&root.path().join("a")).expect("mode") & 0o777,
            PRIVATE_DIR
        );
    }

    #[test]
    fn loose_modes_are_tightened_to_the_owners_bits() {
        let root = tempfile::tempdir().expect("temp dir");
        let file = root.path().join("keys.json");
        std::fs::write(&file, "{}").expect("write");
        for (loose, tight) in [
            (0o755, 0o700),
            (0o644, 0o600),
            (0o666, 0o600),
            (0o444, 0o400),
        ] {
            set(&file, loose);
            make_private(&file).expect("tightened");
            assert_eq!(mode(&file).expect("mode"), tight, "{loose:04o}");
        }
        make_private(&file).expect("already private");
        assert_eq!(mode(&file).expect("mode"), 0o400);
    }

    #[test]
    fn a_read_only_folder_open_to_writers_is_refused_unless_its_file_system_is_read_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let file = root.path().join("keys.json");
        std::fs::write(&file, "{}").expect("write");
        set(&file, 0o664);
        let error = check_read_only(&file, false).expect_err("group may write");
        let text = error.to_string();
        assert!(text.contains("keys.json has mode 0664"), "{text}");
        check_read_only(&file, true).expect("nobody may write a read-only file system");
        set(&file, 0o644);
        check_read_only(&file, false).expect("readable only: a warning");
        assert_eq!(mode(&file).expect("mode"), 0o644, "left as it is");
        set(&file, 0o600);
        check_read_only(&file, false).expect("private");
    }
}

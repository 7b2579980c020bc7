//! Files that hold real addresses (the SQLite database with its WAL, the
//! development outbox) are the relay's alone: made 0600 in folders made
//! 0700, whatever the umask. SQLite gives its `-wal` and `-shm` files the
//! database file's mode, so creating that file 0600 covers all three.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Create `dir` and any missing parents with mode 0700. Folders that exist
/// keep their mode.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Create or truncate `path` for writing, mode 0600 when it is new.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Make the empty file `path` with mode 0600 unless it exists, so that what
/// opens it next (SQLite) finds it already private.
pub fn create_empty_if_missing(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Group or others may read, write or run it.
pub const GROUP_OR_OTHERS: u32 = 0o077;
/// Others (not the owner, not the group) may read it.
pub const OTHERS_READ: u32 = 0o004;

/// The mode bits of `path` when they grant any of `bits`
/// (`GROUP_OR_OTHERS`, `OTHERS_READ`).
pub fn mode_granting(path: &Path, bits: u32) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & bits != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        let file = dir.join("f");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode_granting(&file, GROUP_OR_OTHERS), None);
        let db = dir.join("t.db");
        create_empty_if_missing(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, b"kept").unwrap();
        create_empty_if_missing(&db).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"kept");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(mode_granting(&db, GROUP_OR_OTHERS), Some(0o644));
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(mode_granting(&db, OTHERS_READ), None, "the group may");
    }
}

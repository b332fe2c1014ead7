//! The tenant's files in a backup: every file of `ctx.files()` packed into a tar archive that is
//! sealed as the dump is (zstd, age, BLAKE3), and unpacked into a scratch folder for a restore,
//! each entry checked as [`FilePath`] checks a path the application gives: a damaged or forged
//! archive can name nothing outside the tenant's files.

use std::io;
use std::path::{Path, PathBuf};

use tenancy_core::files::{FilePath, FilesError, TenantFiles};

use crate::archive::{Sealed, Sealer, Sealing};
use crate::manifest::FilesArchive;

/// What [`pack`] wrote.
pub struct Packed {
    /// The sealed archive.
    pub sealed: Sealed,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Packs every file of `files` into `target`. A file deleted while the backup runs is left out;
/// each file is read whole (a write replaces a file at once, so none is caught half-written).
///
/// # Errors
/// When the files cannot be listed or read, or the archive cannot be written.
pub async fn pack(files: &TenantFiles, target: std::fs::File, sealing: &Sealing) -> anyhow::Result<Packed> {
    let entries = files.walk().await?;
    let (files, sealing, runtime) = (files.clone(), sealing.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let mut archive = tar::Builder::new(Sealer::new(target, &sealing)?);
        let (mut count, mut bytes) = (0u64, 0u64);
        for entry in entries {
            let contents = match runtime.block_on(files.read(&entry.path)) {
                Ok(contents) => contents,
                Err(FilesError::NotFound { .. }) => continue,
                Err(err) => return Err(anyhow::Error::new(err).context(format!("cannot back up the files in {}", files.describe()))),
            };
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(contents.len() as u64);
            archive.append_data(&mut header, &entry.path, contents.as_slice())?;
            count += 1;
            bytes += contents.len() as u64;
        }
        let sealed = archive.into_inner()?.finish()?;
        Ok(Packed { sealed, files: count, bytes })
    })
    .await?
}

/// A backup's files, unpacked into a scratch folder (removed when dropped).
pub struct UnpackedFiles {
    folder: tempfile::TempDir,
}

impl UnpackedFiles {
    /// Unpacks the archive at `tar` (already unsealed and its checksum compared) into a new
    /// folder in `scratch`, and checks it holds what `expected` says.
    ///
    /// # Errors
    /// An entry that is not a plain file or folder, a path [`FilePath`] refuses, or counts that
    /// differ from the manifest's: the archive is damaged or was not written by tenancy.
    pub async fn new(tar: &Path, scratch: &Path, expected: &FilesArchive) -> anyhow::Result<Self> {
        let folder = tempfile::Builder::new().prefix(".files-").tempdir_in(scratch)?;
        let (tar, into, expected) = (tar.to_owned(), folder.path().to_owned(), expected.clone());
        tokio::task::spawn_blocking(move || unpack(&tar, &into, &expected)).await??;
        Ok(Self { folder })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }
}

fn unpack(tar: &Path, into: &Path, expected: &FilesArchive) -> anyhow::Result<()> {
    let damaged = |why: String| anyhow::anyhow!("its files archive is damaged: {why}");
    let mut archive = tar::Archive::new(io::BufReader::new(std::fs::File::open(tar)?));
    let (mut count, mut bytes) = (0u64, 0u64);
    for entry in archive.entries().map_err(|err| damaged(err.to_string()))? {
        let mut entry = entry.map_err(|err| damaged(err.to_string()))?;
        let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| damaged("a name is not UTF-8".into()))?;
        let path = FilePath::parse(name.trim_end_matches('/')).map_err(|err| damaged(err.to_string()))?;
        let target: PathBuf = into.join(path.as_str());
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut file = std::fs::File::options().write(true).create_new(true).open(&target).map_err(|err| {
                    if err.kind() == io::ErrorKind::AlreadyExists {
                        damaged(format!("`{}` is in it twice", path.as_str()))
                    } else {
                        err.into()
                    }
                })?;
                bytes += io::copy(&mut entry, &mut file)?;
                count += 1;
            }
            other => return Err(damaged(format!("`{}` is a {other:?}, not a file", path.as_str()))),
        }
    }
    if (count, bytes) != (expected.files, expected.bytes) {
        return Err(damaged(format!(
            "it holds {count} files of {bytes} bytes, the manifest says {} of {}",
            expected.files, expected.bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::manifest::Checksum;

    use super::*;

    /// A tar of one entry named `name` (written raw: the builder's own checks would refuse it).
    fn forged(name: &str, kind: tar::EntryType) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(if kind == tar::EntryType::Regular { 4 } else { 0 });
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        let mut archive = tar::Builder::new(Vec::new());
        archive.append(&header, if kind == tar::EntryType::Regular { &b"evil"[..] } else { &[][..] }).unwrap();
        archive.into_inner().unwrap()
    }

    fn expected(files: u64, bytes: u64) -> FilesArchive {
        let checksum = Checksum { algorithm: "blake3".into(), hex: String::new() };
        FilesArchive { data_file: String::new(), files, bytes, archive_bytes: 0, stored_bytes: 0, checksum }
    }

    #[test]
    fn a_forged_archive_can_name_nothing_outside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("into");
        for (name, kind) in [
            ("../evil", tar::EntryType::Regular),
            ("/tmp/evil", tar::EntryType::Regular),
            ("a/../../evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            ("fifo", tar::EntryType::Fifo),
        ] {
            std::fs::create_dir_all(&into).unwrap();
            let tar = dir.path().join("forged.tar");
            std::fs::write(&tar, forged(name, kind)).unwrap();
            let refused = unpack(&tar, &into, &expected(1, 4)).unwrap_err().to_string();
            assert!(refused.contains("damaged"), "{name}: {refused}");
            assert!(!dir.path().join("evil").exists() && !Path::new("/tmp/evil").exists(), "{name} escaped");
            std::fs::remove_dir_all(&into).unwrap();
        }
    }

    #[test]
    fn an_archive_that_holds_other_than_its_manifest_says_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("ok.tar");
        std::fs::write(&tar, forged("ok.txt", tar::EntryType::Regular)).unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        unpack(&tar, &dir.path().join("a"), &expected(1, 4)).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/ok.txt")).unwrap(), b"evil");
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let refused = unpack(&tar, &dir.path().join("b"), &expected(2, 8)).unwrap_err().to_string();
        assert!(refused.contains("the manifest says 2"), "{refused}");
    }
}

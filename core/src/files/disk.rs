//! Tenants' files in a folder: `{files.root}/{tenant_id}/files`.
//!
//! On the way down each existing segment is looked at without following links, and a symbolic
//! link anywhere under the root is refused: this module never makes one, so one found there was
//! put there to lead out. Writes go to a temporary file beside the target and are renamed over
//! it, so a reader never sees half a file and a crash leaves the old one. Everything here blocks;
//! [`super::TenantFiles`] runs it on a blocking thread.

use std::io;
use std::path::{Path, PathBuf};

use super::{FileEntry, FilePath, FilesError, PARTIAL_PREFIX};

/// Folders being swapped in or out by [`replace_with`] start with this.
const SWAP_PREFIX: &str = ".files-";

pub(super) fn write(root: &Path, path: &FilePath, bytes: &[u8]) -> Result<(), FilesError> {
    let parent = walk(root, path, Walk::MakeFolders)?;
    let target = parent.join(path.name());
    refuse_link(&target, path)?;
    let partial = parent.join(format!("{PARTIAL_PREFIX}{}", uuid::Uuid::now_v7().simple()));
    let written = std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, &target));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        io_error("write", path, source)
    })
}

pub(super) fn read(root: &Path, path: &FilePath) -> Result<Vec<u8>, FilesError> {
    std::fs::read(existing(root, path)?).map_err(|source| io_error("read", path, source))
}

pub(super) fn exists(root: &Path, path: &FilePath) -> Result<bool, FilesError> {
    match existing(root, path).and_then(|target| std::fs::symlink_metadata(target).map_err(|source| io_error("read", path, source))) {
        Ok(_) => Ok(true),
        Err(FilesError::NotFound { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

pub(super) fn list(root: &Path, dir: Option<&FilePath>) -> Result<Vec<FileEntry>, FilesError> {
    let folder = match dir {
        None => root.to_path_buf(),
        Some(dir) => match existing(root, dir) {
            Ok(folder) => folder,
            Err(FilesError::NotFound { .. }) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        },
    };
    let shown = dir.map(FilePath::as_str).unwrap_or("");
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(FilesError::Io { action: "list", path: shown.to_owned(), source }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| FilesError::Io { action: "list", path: shown.to_owned(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PARTIAL_PREFIX) {
            continue;
        }
        let path = if shown.is_empty() { name } else { format!("{shown}/{name}") };
        let meta = entry.metadata().map_err(|source| FilesError::Io { action: "list", path: path.clone(), source })?;
        if meta.file_type().is_symlink() {
            return Err(FilesError::Link { path });
        }
        found.push(FileEntry { is_dir: meta.is_dir(), size: if meta.is_dir() { 0 } else { meta.len() }, path });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Every file under `root`, folders descended into, sorted by path; a link anywhere is refused.
pub(super) fn walk_all(root: &Path) -> Result<Vec<FileEntry>, FilesError> {
    let mut files = Vec::new();
    let mut folders = vec![None::<FilePath>];
    while let Some(folder) = folders.pop() {
        for entry in list(root, folder.as_ref())? {
            if entry.is_dir {
                folders.push(Some(FilePath::parse(&entry.path)?));
            } else {
                files.push(entry);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

pub(super) fn delete(root: &Path, path: &FilePath) -> Result<bool, FilesError> {
    let target = match walk(root, path, Walk::Existing) {
        Ok(parent) => parent.join(path.name()),
        Err(FilesError::NotFound { .. }) => return Ok(false),
        Err(err) => return Err(err),
    };
    let removed = match std::fs::symlink_metadata(&target) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(io_error("delete", path, source)),
        // A link is removed itself, never followed (`remove_dir_all` does not follow either).
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&target),
        Ok(_) => std::fs::remove_file(&target),
    };
    removed.map(|()| true).map_err(|source| io_error("delete", path, source))
}

/// Makes `root` hold exactly what `source` holds: a copy is made beside `root` (so the last step
/// is a rename on one file system), then swapped in with two renames. Until the first rename
/// readers see the old files; the moment between the two, none; a rerun after a crash there
/// finishes the job (leftovers of earlier runs are swept first).
pub(super) fn replace_with(root: &Path, source: &Path) -> Result<(), FilesError> {
    let io = |action: &'static str| move |source: io::Error| FilesError::Io { action, path: String::new(), source };
    let tenant = root.parent().expect("a tenant's files folder is inside its tenant folder");
    std::fs::create_dir_all(tenant).map_err(io("make the folder for"))?;
    sweep_swaps(tenant);
    let incoming = tenant.join(format!("{SWAP_PREFIX}incoming-{}", uuid::Uuid::now_v7().simple()));
    if let Err(err) = copy_tree(source, &incoming) {
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(err);
    }
    let outgoing = tenant.join(format!("{SWAP_PREFIX}outgoing-{}", uuid::Uuid::now_v7().simple()));
    let had_files = match std::fs::rename(root, &outgoing) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&incoming);
            return Err(io("replace the files of")(err));
        }
    };
    if let Err(err) = std::fs::rename(&incoming, root) {
        if had_files {
            let _ = std::fs::rename(&outgoing, root);
        }
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(io("replace the files of")(err));
    }
    if had_files {
        let _ = std::fs::remove_dir_all(&outgoing);
    }
    Ok(())
}

/// Removes what an interrupted [`replace_with`] left beside the files folder.
fn sweep_swaps(tenant: &Path) {
    let Ok(entries) = std::fs::read_dir(tenant) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|name| name.starts_with(SWAP_PREFIX)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies the regular files and folders of `from` into a new folder `to`; a link or any other
/// kind of file is refused.
fn copy_tree(from: &Path, to: &Path) -> Result<(), FilesError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source: io::Error| FilesError::Io { action: "copy", path, source }
    };
    std::fs::create_dir(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(&source))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(io(&source))?;
        } else {
            return Err(FilesError::Link { path: source.display().to_string() });
        }
    }
    Ok(())
}

/// How [`walk`] treats a missing folder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    MakeFolders,
    Existing,
}

/// The folder `path`'s last segment is in, each segment on the way checked not to be a link
/// (and made, with [`Walk::MakeFolders`]).
fn walk(root: &Path, path: &FilePath, mode: Walk) -> Result<PathBuf, FilesError> {
    if mode == Walk::MakeFolders {
        std::fs::create_dir_all(root).map_err(|source| io_error("make the folder for", path, source))?;
    }
    let segments: Vec<&str> = path.segments().collect();
    let mut folder = root.to_path_buf();
    for (index, segment) in segments[..segments.len() - 1].iter().enumerate() {
        folder.push(segment);
        let so_far = segments[..=index].join("/");
        match std::fs::symlink_metadata(&folder) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(FilesError::Link { path: so_far }),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(io_error("use as a folder", path, io::Error::from(io::ErrorKind::NotADirectory))),
            Err(err) if err.kind() == io::ErrorKind::NotFound && mode == Walk::MakeFolders => {
                match std::fs::create_dir(&folder) {
                    Ok(()) => {}
                    // Made by a concurrent write: checked again below on the next segment's walk.
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(io_error("make the folder for", path, source)),
                }
                if std::fs::symlink_metadata(&folder).is_ok_and(|meta| meta.file_type().is_symlink()) {
                    return Err(FilesError::Link { path: so_far });
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(FilesError::NotFound { path: path.as_str().to_owned() }),
            Err(source) => return Err(io_error("read", path, source)),
        }
    }
    Ok(folder)
}

/// Where `path` is on disk, with no link on the way or at the end (the target itself may be
/// missing: the caller's read reports it).
fn existing(root: &Path, path: &FilePath) -> Result<PathBuf, FilesError> {
    let target = walk(root, path, Walk::Existing)?.join(path.name());
    refuse_link(&target, path)?;
    Ok(target)
}

/// Refuses `target` if it is a link; a missing target passes (the caller reports it).
fn refuse_link(target: &Path, path: &FilePath) -> Result<(), FilesError> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FilesError::Link { path: path.as_str().to_owned() }),
        _ => Ok(()),
    }
}

fn io_error(action: &'static str, path: &FilePath, source: io::Error) -> FilesError {
    if source.kind() == io::ErrorKind::NotFound {
        return FilesError::NotFound { path: path.as_str().to_owned() };
    }
    FilesError::Io { action, path: path.as_str().to_owned(), source }
}

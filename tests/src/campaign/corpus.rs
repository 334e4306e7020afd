//! The trees the campaign snapshots, and their manifests.
//!
//! A restore is compared with the tree *as it was when the snapshot was taken*, not as it is
//! now: the tree changes between snapshots, so each snapshot carries its manifest's number in
//! its comment (`--comment m<N>`) and the campaign keeps every manifest. A comment survives
//! `ore forget` rewriting the chain (keys change, comments do not) and `ore sync` copying it.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry of a tree: what is compared after a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `f` file, `d` directory, `l` symlink.
    pub kind: char,
    pub size: u64,
    pub mode: u32,
    pub hash: Option<[u8; 32]>,
    pub target: Option<String>,
}

/// Every entry under a root (the root itself left out), by path relative to it.
pub type Manifest = BTreeMap<String, Entry>;

/// The manifest of the tree under `root`.
pub fn manifest(root: &Path) -> std::io::Result<Manifest> {
    let mut m = Manifest::new();
    walk(root, "", &mut m)?;
    Ok(m)
}

fn walk(root: &Path, rel: &str, out: &mut Manifest) -> std::io::Result<()> {
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p)?;
        let ft = md.file_type();
        let entry = Entry {
            kind: if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else {
                'f'
            },
            size: if ft.is_file() { md.size() } else { 0 },
            mode: if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            },
            hash: if ft.is_file() {
                Some(*blake3::hash(&std::fs::read(&p)?).as_bytes())
            } else {
                None
            },
            target: if ft.is_symlink() {
                Some(std::fs::read_link(&p)?.display().to_string())
            } else {
                None
            },
        };
        out.insert(r.clone(), entry);
        if ft.is_dir() {
            walk(root, &r, out)?;
        }
    }
    Ok(())
}

/// The first difference between the manifest a snapshot was taken from and what a restore
/// wrote, or `None` when they are the same.
pub fn first_difference(want: &Manifest, got: &Manifest) -> Option<String> {
    for (path, w) in want {
        match got.get(path) {
            None => return Some(format!("{path} is missing from the restore")),
            Some(g) if g != w => {
                return Some(format!("{path} differs: wanted {w:?}, restored {g:?}"));
            }
            Some(_) => {}
        }
    }
    got.keys()
        .find(|p| !want.contains_key(*p))
        .map(|p| format!("{p} was restored but is not in the snapshot's tree"))
}

/// A generated tree that changes between snapshots: many small files in a few directories, a
/// few larger ones, symlinks and unusual modes. `scale` is the number of small files.
pub struct Corpus {
    pub root: std::path::PathBuf,
    scale: usize,
    generation: u64,
}

fn write(p: &Path, data: &[u8]) -> std::io::Result<u64> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, data)?;
    Ok(data.len() as u64)
}

fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

impl Corpus {
    /// Generation 0 of the tree at `root`: `scale` small files, three larger ones.
    pub fn create(root: &Path, scale: usize, rng: &mut fastrand::Rng) -> std::io::Result<Corpus> {
        std::fs::create_dir_all(root)?;
        let c = Corpus {
            root: root.to_path_buf(),
            scale,
            generation: 0,
        };
        for i in 0..scale {
            let len = rng.usize(200..16_000);
            write(&c.small(i), &random_bytes(rng, len))?;
        }
        for i in 0..3 {
            let len = rng.usize(200_000..700_000);
            write(&root.join(format!("large/l{i}")), &random_bytes(rng, len))?;
        }
        // Compressible text: stored smaller than it is.
        write(
            &root.join("text.txt"),
            &b"the same line again\n".repeat(5_000),
        )?;
        std::os::unix::fs::symlink("text.txt", root.join("link"))?;
        std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling"))?;
        std::fs::set_permissions(c.small(0), std::fs::Permissions::from_mode(0o600))?;
        std::fs::set_permissions(root.join("large"), std::fs::Permissions::from_mode(0o750))?;
        Ok(c)
    }

    fn small(&self, i: usize) -> std::path::PathBuf {
        self.root.join(format!("d{:02}/f{i:04}", i % 8))
    }

    /// The next generation: rewrites about a tenth of the small files and one large file,
    /// adds and deletes a few, changes a mode and a symlink. Returns the bytes of new content
    /// written (what a snapshot of the new generation may have to store).
    pub fn mutate(&mut self, rng: &mut fastrand::Rng) -> std::io::Result<u64> {
        self.generation += 1;
        let g = self.generation;
        let mut new = 0;
        for _ in 0..self.scale.div_ceil(10) {
            let p = self.small(rng.usize(..self.scale));
            let len = rng.usize(200..16_000);
            new += write(&p, &random_bytes(rng, len))?;
        }
        let large = self.root.join(format!("large/l{}", rng.usize(..3)));
        let len = rng.usize(200_000..700_000);
        new += write(&large, &random_bytes(rng, len))?;
        for i in 0..3 {
            let len = rng.usize(100..8_000);
            new += write(
                &self.root.join(format!("new/g{g}-{i}")),
                &random_bytes(rng, len),
            )?;
        }
        // Delete two files added earlier (when there are any).
        if let Ok(rd) = std::fs::read_dir(self.root.join("new")) {
            let mut added: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            added.sort();
            for p in added.iter().take(2) {
                if !p.ends_with(format!("g{g}-0")) && added.len() > 6 {
                    std::fs::remove_file(p)?;
                }
            }
        }
        let p = self.small(rng.usize(..self.scale));
        let mode = [0o600, 0o644, 0o640, 0o755][rng.usize(..4)];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        let link = self.root.join("link");
        std::fs::remove_file(&link)?;
        let target = format!("d{:02}", g % 8);
        std::os::unix::fs::symlink(target, &link)?;
        Ok(new)
    }

    /// Bytes of file content in the tree.
    pub fn bytes(&self) -> std::io::Result<u64> {
        Ok(manifest(&self.root)?.values().map(|e| e.size).sum())
    }
}

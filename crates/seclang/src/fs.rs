//! A `FileSource` over a directory on disk (policy build, tests, benchmarks).

use crate::FileSource;
use std::path::PathBuf;

/// Reads paths relative to `root` (absolute paths as they are).
pub struct DirSource {
    pub root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource { root: root.into() }
    }

    fn full(&self, p: &str) -> PathBuf {
        if p.starts_with('/') {
            PathBuf::from(p)
        } else {
            self.root.join(p)
        }
    }
}

impl FileSource for DirSource {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.full(path))
    }

    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        let full = self.full(pattern);
        let pat = full.to_string_lossy().into_owned();
        let paths = glob::glob(&pat)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let root = self.root.to_string_lossy().into_owned();
        let mut out: Vec<String> = paths
            .filter_map(Result::ok)
            .map(|p| {
                let s = p.to_string_lossy().into_owned();
                if pattern.starts_with('/') {
                    s
                } else {
                    s.strip_prefix(&root)
                        .map(|r| r.trim_start_matches('/').to_string())
                        .unwrap_or(s)
                }
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

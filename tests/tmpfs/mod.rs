//! A small tmpfs for full-disk tests: mounted on a fresh temporary directory, filled with a
//! file on demand, unmounted when dropped (also when the test panics). Mounting needs root (CI
//! runs the tests as root); [`Tmpfs::mount`] says why it cannot and the test skips.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Tmpfs {
    /// A tmpfs of `bytes` (rounded up to pages by the kernel), or why there is none (then the
    /// test prints it and skips).
    pub fn mount(bytes: u64) -> Result<Tmpfs, String> {
        // SAFETY: a plain syscall without arguments.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: mounting a tmpfs needs root (CI runs as root)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` until the file system is full (or `leave` bytes are left, roughly: the
    /// file stops at the first write that would go below it). Returns the file's size.
    pub fn fill(&self, name: &str, leave: u64) -> u64 {
        let path = self.path.join(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("create the fill file");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let free = free_bytes(&self.path);
            if free <= leave {
                break;
            }
            let n = (free - leave).min(chunk.len() as u64) as usize;
            match file.write(&chunk[..n]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        file.sync_all().ok();
        written
    }

    /// Deletes a fill file: its space is free again.
    pub fn free(&self, name: &str) {
        std::fs::remove_file(self.path.join(name)).expect("remove the fill file");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open there (a child killed late): detach it now, the
            // kernel frees it once the last file is closed.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        drop(self.dir.take());
    }
}

/// Bytes available on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct; `c` is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut stat) }, 0);
    stat.f_bavail as u64 * stat.f_frsize as u64
}

/// The skip message of a test that needs a tmpfs.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

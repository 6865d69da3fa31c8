//! The store lock: one publishing process per store.
//!
//! An advisory `flock` on `lock` is held for the whole run. The operating system
//! releases it when the holder dies, however it dies, so a lock left by a dead
//! process is recovered automatically; the pid written into the file only serves
//! the error message.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::time::{Duration, Instant};

use super::{io_err, Error, Result, Store};

/// Holds the store lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock, waiting up to `wait` for a live holder to finish.
    pub fn acquire(store: &Store, wait: Duration) -> Result<StoreLock> {
        let path = store.root().join("lock");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(Error::Locked {
                            root: store.root().to_path_buf(),
                            holder: if holder.is_empty() {
                                "unknown pid".into()
                            } else {
                                holder.to_string()
                            },
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            }
        }
        file.set_len(0).map_err(io_err("write", &path))?;
        file.rewind().map_err(io_err("write", &path))?;
        write!(file, "pid {}", std::process::id()).map_err(io_err("write", &path))?;
        Ok(StoreLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_then_admitted_after_release() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let first = StoreLock::acquire(&store, Duration::ZERO).unwrap();
        let err = StoreLock::acquire(&store, Duration::from_millis(150)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StoreLock::acquire(&store, Duration::ZERO).unwrap();
    }
}

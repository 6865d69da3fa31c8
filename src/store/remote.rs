//! Copying results between two stores: this one and a remote (another store, e.g. on a
//! shared file system), for `repro push`, `repro pull` and `repro run --remote`.
//!
//! [`copy_result`] copies a record's object first, into the target's `tmp/`, rehashes
//! the copy and publishes it by rename, and only then writes the record: an interrupted
//! copy leaves at most a temp folder, never a record whose object is missing or corrupt.
//! No lock is taken on the remote: objects are content-addressed and records are
//! written whole by rename, so concurrent writers of one key leave one valid record.

use super::object::{check, copy_tree, publish_as, remove_tree, tree_digest, Health};
use super::record::{lookup, write_record, Lookup, StageRecord};
use super::{Error, Result, Store};

/// What [`copy_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// The record (and, where needed, its object) was copied.
    Copied,
    /// The target already held this record with an intact object.
    AlreadyThere,
}

/// Copies `record` and its object from `from` to `to`, the object first and verified.
pub fn copy_result(from: &Store, to: &Store, record: &StageRecord) -> Result<Copied> {
    let digest = &record.output;
    let present = matches!(lookup(to, &record.key), Lookup::Found(r) if r.output == *digest);
    let intact = check(to, digest)? == Health::Intact;
    if present && intact {
        return Ok(Copied::AlreadyThere);
    }
    if !intact {
        let tmp = to.tmp_dir().join(format!(
            "copy-{}-{}",
            &digest[..digest.len().min(16)],
            std::process::id()
        ));
        if tmp.exists() {
            remove_tree(&tmp)?;
        }
        copy_tree(&from.object_dir(digest), &tmp)?;
        let copied = tree_digest(&tmp)?;
        if copied != *digest {
            let _ = remove_tree(&tmp);
            return Err(Error::Missing(format!(
                "object {digest} of {} hashes to {copied} after copying it to {}: the source is damaged or changed while copied (`repro verify --store {}` checks it)",
                from.root().display(),
                to.root().display(),
                from.root().display()
            )));
        }
        publish_as(to, &tmp, digest)?;
    }
    write_record(to, record)?;
    Ok(Copied::Copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::key::{KeyFields, KEY_FORMAT};
    use crate::store::object::publish;
    use crate::store::record::Manifest;
    use std::collections::BTreeMap;

    fn record(store: &Store, text: &str) -> StageRecord {
        let work = store.tmp_dir().join("w");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::write(work.join("sub/out.txt"), text).unwrap();
        let output = publish(store, &work).unwrap();
        let fields = KeyFields {
            format: KEY_FORMAT,
            kind: "dataset".into(),
            version: 1,
            params: serde_json::json!({ "text": text }),
            seed: 0,
            inputs: BTreeMap::new(),
            sources: BTreeMap::new(),
            pending: BTreeMap::new(),
        };
        let manifest = Manifest::for_tests("p", "s", &fields);
        let r = StageRecord::new(fields, output, manifest);
        write_record(store, &r).unwrap();
        r
    }

    #[test]
    fn a_result_is_copied_object_first_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(&dir.path().join("a")).unwrap();
        let b = Store::open(&dir.path().join("b")).unwrap();
        let r = record(&a, "hello");
        assert_eq!(copy_result(&a, &b, &r).unwrap(), Copied::Copied);
        assert!(matches!(lookup(&b, &r.key), Lookup::Found(_)));
        assert_eq!(check(&b, &r.output).unwrap(), Health::Intact);
        assert_eq!(copy_result(&a, &b, &r).unwrap(), Copied::AlreadyThere);
    }

    #[test]
    fn a_damaged_source_object_leaves_no_record_behind() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(&dir.path().join("a")).unwrap();
        let b = Store::open(&dir.path().join("b")).unwrap();
        let r = record(&a, "hello");
        let file = a.object_dir(&r.output).join("sub/out.txt");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "HELLO").unwrap();
        let err = copy_result(&a, &b, &r).unwrap_err();
        assert!(err.to_string().contains("after copying it"), "{err}");
        assert!(matches!(lookup(&b, &r.key), Lookup::Absent));
        assert_eq!(check(&b, &r.output).unwrap(), Health::Missing);
    }
}

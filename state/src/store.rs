//! Task state: one RocksDB instance per task (partition), one column family per store, and
//! the changelog offset each store reflects.
//!
//! Writes never go to RocksDB directly. A transaction's writes collect in [`Writes`] (ordered,
//! so reads see them and range scans merge them); after the Kafka transaction that carries
//! their changelog records commits, [`TaskDb::apply`] writes them and the changelog offsets in
//! one atomic batch. RocksDB's write-ahead log is off: a batch lost in a crash is replayed from
//! the changelog, because the offset it would have stored is lost with it. That holds only if
//! the column families reach disk together: without a WAL, RocksDB flushes each family's
//! memtable on its own, and the meta family (offsets) could be on disk while a data family's
//! writes of the same batch were lost. `atomic_flush` makes every flush cover all families
//! at once, so what is on disk is always the state as of one batch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::error::{Error, Result};

const META_CF: &str = "__meta";
/// Memtable size per column family unless configured otherwise.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 8 << 20;

/// Key–value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Pending writes: per store, key → new value (`None` deletes).
#[derive(Debug, Clone, Default)]
pub struct Writes {
    stores: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Writes {
    /// Empty writes for `store_count` stores.
    pub fn new(store_count: usize) -> Self {
        Self {
            stores: vec![BTreeMap::new(); store_count],
        }
    }

    /// What these writes say about a key: `None` if untouched, `Some(None)` if deleted.
    pub fn lookup(&self, store: usize, key: &[u8]) -> Option<Option<&[u8]>> {
        self.stores[store].get(key).map(|v| v.as_deref())
    }

    pub fn put(&mut self, store: usize, key: Vec<u8>, value: Vec<u8>) {
        self.stores[store].insert(key, Some(value));
    }

    pub fn delete(&mut self, store: usize, key: Vec<u8>) {
        self.stores[store].insert(key, None);
    }

    /// Moves every write of `other` on top of these.
    pub fn absorb(&mut self, other: &mut Writes) {
        for (mine, theirs) in self.stores.iter_mut().zip(other.stores.iter_mut()) {
            // Not `BTreeMap::append`: it rebuilds the whole map (O(n + m)), and `other` holds
            // one record's few writes while `self` holds a whole transaction's.
            while let Some((key, value)) = theirs.pop_first() {
                mine.insert(key, value);
            }
        }
    }

    /// Whether there is no write at all.
    pub fn is_empty(&self) -> bool {
        self.stores.iter().all(BTreeMap::is_empty)
    }

    /// The writes of one store, in key order.
    pub fn store(&self, store: usize) -> &BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        &self.stores[store]
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.stores.iter_mut().for_each(BTreeMap::clear);
    }

    fn range<'a>(
        &'a self,
        store: usize,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        self.stores[store].range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
    }
}

/// The RocksDB instance of one task.
pub struct TaskDb {
    db: DB,
    stores: Vec<String>,
    path: PathBuf,
}

impl std::fmt::Debug for TaskDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskDb")
            .field("path", &self.path)
            .field("stores", &self.stores)
            .finish()
    }
}

fn db_error(path: &Path, e: rocksdb::Error) -> Error {
    Error::Store(format!("{}: {e}", path.display()))
}

impl TaskDb {
    /// Opens (creating if needed) the task's database with a column family per store.
    ///
    /// # Errors
    /// RocksDB cannot open the folder (permissions, corruption, another process holds it).
    pub fn open(path: &Path, stores: &[String]) -> Result<Self> {
        Self::open_with_write_buffer(
            path,
            stores,
            DEFAULT_WRITE_BUFFER_BYTES,
            DEFAULT_WRITE_BUFFER_BYTES,
        )
    }

    /// As [`TaskDb::open`], with each store's memtable limited to `write_buffer_bytes` and the
    /// offsets family's to `offsets_write_buffer_bytes` (small values flush often; the crash
    /// tests use them to make one family flush before the others).
    ///
    /// # Errors
    /// As for [`TaskDb::open`].
    pub fn open_with_write_buffer(
        path: &Path,
        stores: &[String],
        write_buffer_bytes: usize,
        offsets_write_buffer_bytes: usize,
    ) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        options.set_atomic_flush(true);
        options.set_write_buffer_size(write_buffer_bytes);
        let family_options = |bytes: usize| {
            let mut options = Options::default();
            options.set_write_buffer_size(bytes);
            options
        };
        let mut families: Vec<ColumnFamilyDescriptor> = stores
            .iter()
            .map(|s| ColumnFamilyDescriptor::new(s, family_options(write_buffer_bytes)))
            .collect();
        families.push(ColumnFamilyDescriptor::new(
            META_CF,
            family_options(offsets_write_buffer_bytes),
        ));
        let db =
            DB::open_cf_descriptors(&options, path, families).map_err(|e| db_error(path, e))?;
        Ok(Self {
            db,
            stores: stores.to_vec(),
            path: path.to_owned(),
        })
    }

    fn cf(&self, store: usize) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(&self.stores[store])
            .expect("column families are created at open")
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(META_CF)
            .expect("meta column family exists")
    }

    /// A committed value.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(store), key)
            .map_err(|e| db_error(&self.path, e))
    }

    /// Committed entries with `start <= key < end`, at most `limit`, in key order.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn range(&self, store: usize, start: &[u8], end: &[u8], limit: usize) -> Result<Entries> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(store),
            IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| db_error(&self.path, e))?;
            if &*key >= end || out.len() >= limit {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    /// The changelog offset (next offset to read) that a store's contents reflect.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn changelog_offset(&self, store: usize) -> Result<Option<i64>> {
        let raw = self
            .db
            .get_cf(self.meta(), self.stores[store].as_bytes())
            .map_err(|e| db_error(&self.path, e))?;
        Ok(raw
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(i64::from_be_bytes))
    }

    /// Writes `writes` and, for the stores named in `offsets`, their new changelog offset, in
    /// one atomic batch.
    ///
    /// # Errors
    /// RocksDB write failure.
    pub fn apply(&self, writes: &Writes, offsets: &[(usize, i64)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for store in 0..self.stores.len() {
            let cf = self.cf(store);
            for (key, value) in writes.store(store) {
                match value {
                    Some(v) => batch.put_cf(cf, key, v),
                    None => batch.delete_cf(cf, key),
                }
            }
        }
        for (store, offset) in offsets {
            batch.put_cf(
                self.meta(),
                self.stores[*store].as_bytes(),
                offset.to_be_bytes(),
            );
        }
        self.write(batch)
    }

    /// Adds a restored changelog record to `batch` (no copy of key or value).
    pub fn restore_into(
        &self,
        batch: &mut WriteBatch,
        store: usize,
        key: &[u8],
        value: Option<&[u8]>,
    ) {
        let cf = self.cf(store);
        match value {
            Some(v) => batch.put_cf(cf, key, v),
            None => batch.delete_cf(cf, key),
        }
    }

    /// Writes a batch of restored records with the changelog offset it reaches.
    ///
    /// # Errors
    /// RocksDB write failure.
    pub fn commit_restored(
        &self,
        mut batch: WriteBatch,
        store: usize,
        next_offset: i64,
    ) -> Result<()> {
        batch.put_cf(
            self.meta(),
            self.stores[store].as_bytes(),
            next_offset.to_be_bytes(),
        );
        self.write(batch)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| db_error(&self.path, e))
    }

    /// Flushes memtables to disk, so a clean shutdown leaves nothing to replay.
    ///
    /// # Errors
    /// RocksDB flush failure.
    pub fn flush(&self) -> Result<()> {
        let mut families: Vec<&rocksdb::ColumnFamily> =
            (0..self.stores.len()).map(|store| self.cf(store)).collect();
        families.push(self.meta());
        // One flush of every family together (atomic_flush): never offsets without data.
        self.db
            .flush_cfs_opt(&families, &rocksdb::FlushOptions::default())
            .map_err(|e| db_error(&self.path, e))
    }
}

/// Every entry of `store` in the task database at `path`, for tools and tests: opens the
/// database with whatever column families it has, read-only.
///
/// # Errors
/// The folder is not a task database, or has no such store.
pub fn dump_store(path: &Path, store: &str) -> Result<Entries> {
    let families = DB::list_cf(&Options::default(), path).map_err(|e| db_error(path, e))?;
    let db = DB::open_cf_for_read_only(&Options::default(), path, &families, false)
        .map_err(|e| db_error(path, e))?;
    let cf = db
        .cf_handle(store)
        .ok_or_else(|| Error::Store(format!("{}: no store {store:?}", path.display())))?;
    db.iterator_cf(cf, IteratorMode::Start)
        .map(|item| {
            item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                .map_err(|e| db_error(path, e))
        })
        .collect()
}

/// Reads through layered writes: `top` (this record's), then `pending` (the open
/// transaction's), then the committed database.
#[derive(Debug)]
pub struct LayeredView<'a> {
    pub db: &'a TaskDb,
    pub pending: &'a Writes,
    pub top: &'a Writes,
}

impl LayeredView<'_> {
    /// The current value of a key.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.top.lookup(store, key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        if let Some(v) = self.pending.lookup(store, key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        self.db.get(store, key)
    }

    /// Current entries with `start <= key < end`, at most `limit`, in key order.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn range(&self, store: usize, start: &[u8], end: &[u8], limit: usize) -> Result<Entries> {
        // Deleted keys may hide committed ones: read enough committed entries to fill `limit`
        // after the deletions are taken out.
        let deletions = self.pending.range(store, start, end).count()
            + self.top.range(store, start, end).count();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .db
            .range(store, start, end, limit.saturating_add(deletions))?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for layer in [self.pending, self.top] {
            for (k, v) in layer.range(store, start, end) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("tcom-store-{}", std::process::id()))
            .join(format!(
                "{:?}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_see_the_newest_layer_and_ranges_merge_all_layers() {
        let dir = temp_dir();
        let db = TaskDb::open(&dir, &["s".to_owned()]).unwrap();
        let mut committed = Writes::new(1);
        for k in [b"a", b"b", b"c", b"d"] {
            committed.put(0, k.to_vec(), b"db".to_vec());
        }
        db.apply(&committed, &[(0, 42)]).unwrap();
        assert_eq!(db.changelog_offset(0).unwrap(), Some(42));

        let mut pending = Writes::new(1);
        pending.put(0, b"b".to_vec(), b"pending".to_vec());
        pending.delete(0, b"c".to_vec());
        let mut top = Writes::new(1);
        top.put(0, b"bb".to_vec(), b"top".to_vec());
        top.delete(0, b"a".to_vec());
        let view = LayeredView {
            db: &db,
            pending: &pending,
            top: &top,
        };

        assert_eq!(view.get(0, b"a").unwrap(), None);
        assert_eq!(view.get(0, b"b").unwrap(), Some(b"pending".to_vec()));
        assert_eq!(view.get(0, b"d").unwrap(), Some(b"db".to_vec()));
        let keys: Vec<Vec<u8>> = view
            .range(0, b"a", b"z", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"bb".to_vec(), b"d".to_vec()]);
        // The limit applies after deletions.
        assert_eq!(view.range(0, b"a", b"z", 2).unwrap().len(), 2);
        assert_eq!(view.range(0, b"b", b"c", 10).unwrap().len(), 2);
    }

    #[test]
    fn state_and_offsets_survive_reopening() {
        let dir = temp_dir();
        {
            let db = TaskDb::open(&dir, &["s".to_owned(), "t".to_owned()]).unwrap();
            let mut batch = WriteBatch::default();
            db.restore_into(&mut batch, 1, b"k", Some(b"v"));
            db.restore_into(&mut batch, 1, b"x", None);
            db.commit_restored(batch, 1, 7).unwrap();
            db.flush().unwrap();
        }
        {
            let db = TaskDb::open(&dir, &["s".to_owned(), "t".to_owned()]).unwrap();
            assert_eq!(db.get(1, b"k").unwrap(), Some(b"v".to_vec()));
            assert_eq!(db.changelog_offset(1).unwrap(), Some(7));
            assert_eq!(db.changelog_offset(0).unwrap(), None);
        }
        assert_eq!(
            dump_store(&dir, "t").unwrap(),
            vec![(b"k".to_vec(), b"v".to_vec())]
        );
    }
}

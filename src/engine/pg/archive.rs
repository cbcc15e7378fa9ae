//! The table of contents of a pg_dump custom-format archive (`pg_dump -Fc`),
//! read the way pg_restore reads it: every entry's dump id, catalog ids,
//! tag, type, section, SQL definition, drop statement, namespace, owner and
//! dependencies. `pg_restore -l` prints the same entries as text, but there
//! a name holding a space cannot be told from the next field; this reader
//! gives every field whole. Only the header and the TOC are read, never the
//! data blocks behind them.
//!
//! Selected entries are restored by handing pg_restore a list file
//! ([`list_file`]): pg_restore reads only the dump id at the start of each
//! line and restores the entries in the list's order.

use std::io::Read;

use crate::engine::error::{Error, Result};

/// The archive versions this reader understands (pg_dump 9.5 to 18).
const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);

/// `teSection` of pg_dump: where pg_restore's `--section` puts an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// ACLs, comments, labels: they follow the section of what precedes them.
    None,
    PreData,
    Data,
    PostData,
}

/// One entry of the table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dump_id: i32,
    pub had_dumper: bool,
    /// The catalog (`pg_class`, `pg_proc`, ...) and OID of the object in the
    /// source database; 0 for entries that are not catalog objects.
    pub table_oid: u32,
    pub oid: u32,
    /// pg_dump's name for the object, e.g. `orders`, `orders orders_pkey`,
    /// `FUNCTION f(integer)` for a comment.
    pub tag: String,
    /// The entry type, e.g. `TABLE`, `FK CONSTRAINT`, `ACL`.
    pub desc: String,
    pub section: Section,
    /// The entry's own section, or for [`Section::None`] entries the one
    /// pg_restore gives them (that of the entry before them).
    pub effective_section: Section,
    pub defn: String,
    pub drop_stmt: String,
    pub namespace: Option<String>,
    pub owner: Option<String>,
    pub deps: Vec<i32>,
}

impl Entry {
    /// Session settings every restore script starts with.
    pub fn is_setting(&self) -> bool {
        matches!(self.desc.as_str(), "ENCODING" | "STDSTRINGS" | "SEARCHPATH")
    }

    /// Entries that belong to another one (its comment, privileges, label).
    pub fn is_attached(&self) -> bool {
        matches!(self.desc.as_str(), "ACL" | "COMMENT" | "SECURITY LABEL")
    }

    /// The key that names the same object in another archive: type,
    /// namespace and tag.
    pub fn key(&self) -> EntryKey {
        EntryKey {
            desc: self.desc.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            tag: self.tag.clone(),
        }
    }
}

/// How an entry is matched across archives (pg_dump's own naming).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    pub desc: String,
    pub namespace: String,
    pub tag: String,
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let desc = self.desc.to_lowercase();
        if self.namespace.is_empty() {
            write!(f, "{desc} {}", self.tag)
        } else {
            write!(f, "{desc} {}.{}", self.namespace, self.tag)
        }
    }
}

/// A whole table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toc {
    pub version: (u8, u8, u8),
    pub database: String,
    pub server_version: String,
    pub dump_version: String,
    pub entries: Vec<Entry>,
}

impl Toc {
    /// The entry with this dump id.
    pub fn get(&self, dump_id: i32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.dump_id == dump_id)
    }

    /// For each attached entry (ACL, comment, label), the object it belongs
    /// to: its first dependency that is not itself attached.
    pub fn parent_of(&self, e: &Entry) -> Option<&Entry> {
        if !e.is_attached() {
            return None;
        }
        e.deps
            .iter()
            .filter_map(|d| self.get(*d))
            .find(|p| !p.is_attached())
    }
}

struct Reader<R> {
    inner: R,
    int_size: usize,
    off_size: usize,
}

fn truncated(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::corrupt("the pg_dump archive is truncated (its table of contents ends early)")
    } else {
        Error::corrupt(format!("the pg_dump archive could not be read: {e}"))
    }
}

impl<R: Read> Reader<R> {
    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b).map_err(truncated)?;
        Ok(b[0])
    }

    fn int(&mut self) -> Result<i64> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                value |= b << (8 * i);
            }
        }
        Ok(if negative { -value } else { value })
    }

    fn int32(&mut self) -> Result<i32> {
        i32::try_from(self.int()?)
            .map_err(|_| Error::corrupt("the pg_dump archive holds an out-of-range integer"))
    }

    fn string(&mut self) -> Result<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        // A table of contents entry is SQL text: far below this.
        if len > 1 << 30 {
            return Err(Error::corrupt(
                "the pg_dump archive's table of contents is damaged (absurd string length)",
            ));
        }
        let mut buf = Vec::new();
        (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(truncated)?;
        if buf.len() as i64 != len {
            return Err(truncated(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn required(&mut self, what: &str) -> Result<String> {
        self.string()?.ok_or_else(|| {
            Error::corrupt(format!(
                "the pg_dump archive's table of contents lacks {what}"
            ))
        })
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.byte()?;
        }
        Ok(())
    }
}

fn section(code: i64) -> Result<Section> {
    Ok(match code {
        1 => Section::None,
        2 => Section::PreData,
        3 => Section::Data,
        4 => Section::PostData,
        other => {
            return Err(Error::corrupt(format!(
                "the pg_dump archive names an unknown section ({other})"
            )));
        }
    })
}

/// Reads the header and table of contents of a custom-format archive.
pub fn read_toc(input: impl Read) -> Result<Toc> {
    let mut r = Reader {
        inner: input,
        int_size: 4,
        off_size: 8,
    };
    let mut magic = [0u8; 5];
    r.inner.read_exact(&mut magic).map_err(truncated)?;
    if &magic != b"PGDMP" {
        return Err(Error::corrupt(
            "not a pg_dump custom-format archive (bad magic)",
        ));
    }
    let version = (r.byte()?, r.byte()?, r.byte()?);
    let (maj, min) = (version.0, version.1);
    if (maj, min) < MIN_VERSION {
        return Err(Error::invalid(format!(
            "the pg_dump archive has format {maj}.{min}, older than this supabackup reads ({}.{})",
            MIN_VERSION.0, MIN_VERSION.1
        )));
    }
    if (maj, min) > MAX_VERSION {
        return Err(Error::invalid(format!(
            "the pg_dump archive has format {maj}.{min}, newer than this supabackup reads ({}.{})",
            MAX_VERSION.0, MAX_VERSION.1
        ))
        .with_hint("a newer supabackup reads it"));
    }
    r.int_size = r.byte()? as usize;
    r.off_size = r.byte()? as usize;
    if !(1..=16).contains(&r.int_size) || !(1..=16).contains(&r.off_size) {
        return Err(Error::corrupt(
            "the pg_dump archive's header is damaged (integer sizes)",
        ));
    }
    let format = r.byte()?;
    if format != 1 {
        return Err(Error::invalid(format!(
            "the pg_dump archive is not in custom format (format code {format})"
        )));
    }
    if (maj, min) >= (1, 15) {
        r.byte()?; // compression algorithm
    } else {
        r.int()?; // compression level
    }
    for _ in 0..7 {
        r.int()?; // creation time (struct tm)
    }
    let database = r.string()?.unwrap_or_default();
    let server_version = r.string()?.unwrap_or_default();
    let dump_version = r.string()?.unwrap_or_default();
    let count = r.int()?;
    if !(0..=10_000_000).contains(&count) {
        return Err(Error::corrupt(
            "the pg_dump archive's table of contents is damaged (entry count)",
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut current = Section::PreData;
    for _ in 0..count {
        let dump_id = r.int32()?;
        if dump_id <= 0 {
            return Err(Error::corrupt(format!(
                "the pg_dump archive's table of contents is damaged (entry id {dump_id})"
            )));
        }
        let had_dumper = r.int()? != 0;
        let table_oid = r.required("a catalog id")?.parse().unwrap_or(0);
        let oid = r.required("an object id")?.parse().unwrap_or(0);
        let tag = r.string()?.unwrap_or_default();
        let desc = r.required("an entry type")?;
        let sec = section(r.int()?)?;
        let defn = r.string()?.unwrap_or_default();
        let drop_stmt = r.string()?.unwrap_or_default();
        let _copy_stmt = r.string()?;
        let namespace = r.string()?.filter(|s| !s.is_empty());
        let _tablespace = r.string()?;
        let _table_am = r.string()?;
        if (maj, min) >= (1, 16) {
            r.int()?; // relkind
        }
        let owner = r.string()?.filter(|s| !s.is_empty());
        let _with_oids = r.string()?;
        let mut deps = Vec::new();
        while let Some(d) = r.string()? {
            deps.push(d.trim().parse().map_err(|_| {
                Error::corrupt("the pg_dump archive's table of contents is damaged (dependency)")
            })?);
        }
        // The custom format's data pointer: a flag byte and the offset.
        r.byte()?;
        let off = r.off_size;
        r.skip(off)?;
        if sec != Section::None {
            current = sec;
        }
        entries.push(Entry {
            dump_id,
            had_dumper,
            table_oid,
            oid,
            tag,
            desc,
            section: sec,
            effective_section: current,
            defn,
            drop_stmt,
            namespace,
            owner,
            deps,
        });
    }
    Ok(Toc {
        version,
        database,
        server_version,
        dump_version,
        entries,
    })
}

/// Reads the table of contents of the archive at `path`.
pub fn read_toc_file(path: &std::path::Path) -> Result<Toc> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    read_toc(std::io::BufReader::with_capacity(64 * 1024, f))
}

/// A pg_restore `--use-list` file restoring exactly `entries`, in order.
/// pg_restore reads the number before the first `;` of each line; the rest
/// is a comment for people (control characters replaced).
pub fn list_file<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let mut out = String::from("; written by supabackup: the entries to restore, in order\n");
    for e in entries {
        let tag: String = e
            .tag
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(&format!(
            "{}; {} {} {}\n",
            e.dump_id,
            e.desc,
            e.namespace.as_deref().unwrap_or("-"),
            tag
        ));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes archives the way pg_dump does (header + TOC), for tests.
    pub struct Writer {
        pub out: Vec<u8>,
        pub int_size: usize,
    }

    impl Writer {
        pub fn new(version: (u8, u8, u8)) -> Writer {
            let mut w = Writer {
                out: b"PGDMP".to_vec(),
                int_size: 4,
            };
            w.out.extend([version.0, version.1, version.2, 4, 8, 1]);
            if (version.0, version.1) >= (1, 15) {
                w.out.push(0);
            } else {
                w.int(-1);
            }
            for v in [1, 2, 3, 4, 5, 126, 0] {
                w.int(v);
            }
            w.string(Some("db"));
            w.string(Some("15.20"));
            w.string(Some("15.20"));
            w
        }
        pub fn int(&mut self, v: i64) {
            self.out.push(u8::from(v < 0));
            let v = v.unsigned_abs();
            for i in 0..self.int_size {
                self.out.push((v >> (8 * i)) as u8);
            }
        }
        pub fn string(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
        }
        #[allow(clippy::too_many_arguments)]
        pub fn entry(
            &mut self,
            v16: bool,
            id: i64,
            tag: &str,
            desc: &str,
            section: i64,
            namespace: Option<&str>,
            owner: &str,
            deps: &[i64],
        ) {
            self.int(id);
            self.int(0);
            self.string(Some("1259"));
            self.string(Some("16400"));
            self.string(Some(tag));
            self.string(Some(desc));
            self.int(section);
            self.string(Some(&format!("CREATE {desc} {tag};\n")));
            self.string(Some(""));
            self.string(None);
            self.string(namespace);
            self.string(Some(""));
            self.string(Some(""));
            if v16 {
                self.int(b'r' as i64);
            }
            self.string(Some(owner));
            self.string(Some("false"));
            for d in deps {
                self.string(Some(&d.to_string()));
            }
            self.string(None);
            self.out.push(1);
            self.out.extend([0u8; 8]);
        }
    }

    fn sample(version: (u8, u8, u8)) -> Vec<u8> {
        let v16 = (version.0, version.1) >= (1, 16);
        let mut w = Writer::new(version);
        w.int(3);
        w.entry(
            v16,
            5,
            "my table",
            "TABLE",
            2,
            Some("My Schema"),
            "a role",
            &[],
        );
        w.entry(
            v16,
            9,
            "TABLE \"my table\"",
            "ACL",
            1,
            Some("My Schema"),
            "a role",
            &[5],
        );
        w.entry(
            v16,
            7,
            "my table my index",
            "INDEX",
            4,
            Some("My Schema"),
            "a role",
            &[5],
        );
        w.out
    }

    #[test]
    fn reads_every_field_whole_in_every_supported_version() {
        for version in [(1, 14, 0), (1, 15, 0), (1, 16, 0)] {
            let toc = read_toc(sample(version).as_slice()).expect("toc");
            assert_eq!(toc.version, version);
            assert_eq!(toc.entries.len(), 3);
            let t = &toc.entries[0];
            assert_eq!(
                (
                    t.dump_id,
                    t.tag.as_str(),
                    t.desc.as_str(),
                    t.namespace.as_deref(),
                    t.owner.as_deref()
                ),
                (5, "my table", "TABLE", Some("My Schema"), Some("a role"))
            );
            assert_eq!((t.table_oid, t.oid), (1259, 16400));
            assert_eq!(t.defn, "CREATE TABLE my table;\n");
            let acl = &toc.entries[1];
            assert_eq!(acl.section, Section::None);
            assert_eq!(acl.effective_section, Section::PreData);
            assert_eq!(toc.parent_of(acl).map(|p| p.dump_id), Some(5));
            assert_eq!(toc.entries[2].effective_section, Section::PostData);
            assert_eq!(
                t.key().to_string(),
                "table My Schema.my table",
                "keys read as pg_dump names objects"
            );
        }
    }

    #[test]
    fn refuses_damaged_foreign_and_newer_archives() {
        let good = sample((1, 14, 0));
        let err = read_toc(&good[..good.len() - 20]).expect_err("truncated");
        assert!(err.message.contains("truncated"), "{err}");
        let err = read_toc(&b"PGDMQ\x01\x0e\x00"[..]).expect_err("magic");
        assert!(err.message.contains("bad magic"), "{err}");
        let mut newer = good.clone();
        newer[6] = 17;
        let err = read_toc(newer.as_slice()).expect_err("newer");
        assert!(err.message.contains("newer"), "{err}");
        let mut tar = good;
        tar[10] = 3;
        assert!(read_toc(tar.as_slice()).is_err());
    }

    #[test]
    fn list_files_name_ids_in_order() {
        let toc = read_toc(sample((1, 14, 0)).as_slice()).expect("toc");
        let list = list_file(toc.entries.iter().rev());
        let ids: Vec<&str> = list
            .lines()
            .filter(|l| !l.starts_with(';'))
            .map(|l| l.split(';').next().unwrap_or(""))
            .collect();
        assert_eq!(ids, ["7", "9", "5"]);
    }
}

//! `meta.properties`: which cluster and node a log directory belongs to.
//!
//! Kafka's file (`MetaProperties.java`, v1 as KRaft writes it), in Java
//! `Properties` text form:
//! ```text
//! #
//! #<date or comment>
//! node.id=1
//! directory.id=J8aAPcfLQt2bqs1JT_rMgQ
//! version=1
//! cluster.id=MkU3OEVBNTcwNTJENDM2Qg
//! ```
//! v1 always has `cluster.id` and `node.id`; v0 (ZooKeeper era) may have neither and
//! names the node `broker.id`. `directory.id` is a random Kafka UUID, unique per
//! directory, never a reserved one (below 100).
//!
//! [`Ensemble`] is every configured directory's file, checked together as Kafka's
//! `MetaPropertiesEnsemble.verify` does (its messages are kept word for word): one
//! cluster id, one node id, distinct directory ids. `rivulet storage format`
//! writes the files; the broker checks them at start-up and refuses to start on a
//! mismatch, so a node never joins the wrong cluster or takes another node's data.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::fs::{write_atomically, RealFs};
use crate::log_manager::{uuid_from_kafka, uuid_to_kafka, META_PROPERTIES};

/// The longest `meta.properties` read (a real one is ~150 bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why the directories' `meta.properties` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// A malformed file, or a check of [`Ensemble::verify`] failed: Kafka's message.
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn invalid(message: impl Into<String>) -> MetaPropertiesError {
    MetaPropertiesError::Invalid(message.into())
}

/// One directory's `meta.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// 0 or 1.
    pub version: u8,
    pub cluster_id: Option<String>,
    pub node_id: Option<i32>,
    pub directory_id: Option<Uuid>,
}

/// Whether a directory id is one Kafka reserves (`DirectoryId.reserved`: the
/// most significant half zero and the rest below 100: MIGRATING, UNASSIGNED, LOST...).
pub fn is_reserved_directory_id(id: &Uuid) -> bool {
    id.as_u128() < 100
}

/// A random Kafka UUID as `Uuid.randomUuid()` makes one: never a reserved value
/// (0, 1, and below 100 for directory ids), never one whose text starts with `-`.
pub fn random_kafka_uuid(mut next: impl FnMut() -> Uuid) -> Uuid {
    loop {
        let id = next();
        if !is_reserved_directory_id(&id) && !uuid_to_kafka(&id).starts_with('-') {
            return id;
        }
    }
}

/// Parses Java `Properties` text: `key=value` or `key: value` (or `key value`),
/// `#`/`!` comments, backslash escapes and line continuations.
pub fn parse_java_properties(text: &str) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let (key, value) = split_entry(&entry);
        props.insert(unescape(key), unescape(value.trim_start()));
    }
    props
}

/// Splits at the first unescaped `=`, `:` or whitespace.
fn split_entry(entry: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in entry.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '=' | ':' if !escaped => return (&entry[..i], &entry[i + 1..]),
            c if c.is_whitespace() && !escaped => {
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (&entry[..i], rest);
            }
            _ => escaped = false,
        }
    }
    (entry, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

impl MetaProperties {
    /// A v1 file for a formatted directory.
    pub fn v1(cluster_id: &str, node_id: i32, directory_id: Uuid) -> MetaProperties {
        MetaProperties {
            version: 1,
            cluster_id: Some(cluster_id.to_string()),
            node_id: Some(node_id),
            directory_id: Some(directory_id),
        }
    }

    /// Reads the fields as Kafka's `MetaProperties.Builder(Properties)` does.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<MetaProperties, MetaPropertiesError> {
        let version = match props.get("version").map(|v| v.trim()) {
            None | Some("0") => 0,
            Some("1") => 1,
            Some(other) => return Err(invalid(format!("Unknown meta.properties version {other}"))),
        };
        let id_key = if version == 0 { "broker.id" } else { "node.id" };
        let node_id =
            match props.get(id_key) {
                None => None,
                Some(text) => Some(text.trim().parse::<i32>().map_err(|_| {
                    invalid(format!("Unable to read {id_key} as a base-10 number."))
                })?),
            };
        let directory_id = match props.get("directory.id") {
            None => None,
            Some(text) => Some(uuid_from_kafka(text).ok_or_else(|| {
                invalid(format!(
                    "Unable to read directory.id as a Uuid: Input string `{text}` is not a base64-encoded UUID"
                ))
            })?),
        };
        let meta = MetaProperties {
            version,
            cluster_id: props.get("cluster.id").map(|c| c.trim().to_string()),
            node_id,
            directory_id,
        };
        if version == 1 && meta.cluster_id.is_none() {
            return Err(invalid("cluster.id was not found."));
        }
        if version == 1 && meta.node_id.is_none() {
            return Err(invalid("node.id was not found."));
        }
        Ok(meta)
    }

    /// The file's text (v1 names the node `node.id`, v0 `broker.id`).
    pub fn to_text(&self) -> String {
        let mut text = String::from("#\n#Written by rivulet\n");
        if let Some(node_id) = self.node_id {
            let key = if self.version == 0 {
                "broker.id"
            } else {
                "node.id"
            };
            text.push_str(&format!("{key}={node_id}\n"));
        }
        if let Some(id) = &self.directory_id {
            text.push_str(&format!("directory.id={}\n", uuid_to_kafka(id)));
        }
        text.push_str(&format!("version={}\n", self.version));
        if let Some(cluster_id) = &self.cluster_id {
            text.push_str(&format!("cluster.id={cluster_id}\n"));
        }
        text
    }

    /// Reads `dir/meta.properties`; `Ok(None)` when the directory has none.
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES);
        let context = || format!("reading {}", path.display());
        let metadata = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(MetaPropertiesError::Io {
                    context: context(),
                    source,
                })
            }
        };
        if metadata.len() > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "{} is {} bytes; a meta.properties file is at most {MAX_FILE_BYTES}",
                path.display(),
                metadata.len()
            )));
        }
        let text = fs::read_to_string(&path).map_err(|source| MetaPropertiesError::Io {
            context: context(),
            source,
        })?;
        MetaProperties::from_properties(&parse_java_properties(&text))
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    /// Writes `dir/meta.properties` (creating `dir`): a temporary file, fsynced,
    /// renamed over the old one, then the directory fsynced.
    pub fn write(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES);
        fs::create_dir_all(dir)
            .and_then(|()| write_atomically(&*RealFs::shared(), &path, self.to_text().as_bytes()))
            .map_err(|source| MetaPropertiesError::Io {
                context: format!("Error while writing meta.properties file {}", dir.display()),
                source,
            })
    }
}

/// The checks [`Ensemble::verify`] adds to the always-on ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyFlags {
    /// At least one directory must be formatted.
    pub require_at_least_one_valid: bool,
    /// The metadata log directory must be among the directories.
    pub require_metadata_log_dir: bool,
}

/// Every configured directory with its `meta.properties`, if any.
#[derive(Debug, Clone, Default)]
pub struct Ensemble {
    /// Formatted directories.
    pub props: BTreeMap<PathBuf, MetaProperties>,
    /// Directories without `meta.properties` (missing directories included).
    pub empty: BTreeSet<PathBuf>,
    /// Directories whose file could not be read (I/O errors), with the reason.
    pub errors: BTreeMap<PathBuf, String>,
    pub metadata_log_dir: Option<PathBuf>,
}

impl Ensemble {
    /// Loads `meta.properties` from each of `log_dirs` and `metadata_log_dir`. A
    /// malformed file is an error; an unreadable one is recorded in `errors`.
    pub fn load(
        log_dirs: &[PathBuf],
        metadata_log_dir: Option<&Path>,
    ) -> Result<Ensemble, MetaPropertiesError> {
        let mut ensemble = Ensemble {
            metadata_log_dir: metadata_log_dir.map(Path::to_path_buf),
            ..Ensemble::default()
        };
        let dirs: BTreeSet<PathBuf> = log_dirs
            .iter()
            .cloned()
            .chain(metadata_log_dir.map(Path::to_path_buf))
            .collect();
        for dir in dirs {
            match MetaProperties::read(&dir) {
                Ok(Some(props)) => {
                    ensemble.props.insert(dir, props);
                }
                Ok(None) => {
                    ensemble.empty.insert(dir);
                }
                Err(MetaPropertiesError::Io { context, source }) => {
                    ensemble.errors.insert(dir, format!("{context}: {source}"));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ensemble)
    }

    /// Checks the directories agree, with Kafka's messages: v1 files have a
    /// cluster id and node id; every cluster id equals `expected_cluster_id` (or the
    /// first one found); every node id equals `expected_node_id` (or the first
    /// found); directory ids are not reserved and not shared.
    pub fn verify(
        &self,
        expected_cluster_id: Option<&str>,
        expected_node_id: Option<i32>,
        flags: VerifyFlags,
    ) -> Result<(), MetaPropertiesError> {
        if flags.require_at_least_one_valid && self.props.is_empty() {
            return Err(invalid("No readable meta.properties files found."));
        }
        let mut cluster_id: Option<String> = expected_cluster_id.map(str::to_string);
        let mut node_id = expected_node_id;
        let mut seen: BTreeMap<Uuid, &Path> = BTreeMap::new();
        for (dir, meta) in &self.props {
            let path = dir.join(META_PROPERTIES);
            let path = path.display();
            match (&meta.cluster_id, &cluster_id) {
                (None, _) if meta.version == 1 => {
                    return Err(invalid(format!(
                        "cluster.id was not specified in the v1 file: {path}"
                    )))
                }
                (None, _) => {}
                (Some(found), None) => cluster_id = Some(found.clone()),
                (Some(found), Some(expected)) if found != expected => {
                    return Err(invalid(format!(
                        "Invalid cluster.id in: {path}. Expected {expected}, but read {found}"
                    )))
                }
                (Some(_), Some(_)) => {}
            }
            match (meta.node_id, node_id) {
                (None, _) if meta.version == 1 => {
                    return Err(invalid(format!("node.id was not specified in {path}")))
                }
                (None, _) => {}
                (Some(found), None) => node_id = Some(found),
                (Some(found), Some(expected)) if found != expected => {
                    return Err(invalid(format!("Stored node id {found} doesn't match previous node id {expected} in {path}. If you moved your data, make sure your configured node id matches. If you intend to create a new node, you should remove all data in your data directories.")))
                }
                (Some(_), Some(_)) => {}
            }
            if let Some(id) = &meta.directory_id {
                if is_reserved_directory_id(id) {
                    return Err(invalid(format!(
                        "Invalid resrved directory ID {} found in {}",
                        uuid_to_kafka(id),
                        dir.display()
                    )));
                }
                if let Some(previous) = seen.insert(*id, dir) {
                    return Err(invalid(format!(
                        "Duplicate directory ID Optional[{}] found. It was the ID of {}, but also of {}",
                        uuid_to_kafka(id),
                        previous.display(),
                        dir.display()
                    )));
                }
            }
        }
        if flags.require_metadata_log_dir && self.metadata_log_dir.is_none() {
            return Err(invalid("No metadata log directory was specified."));
        }
        if let Some(dir) = &self.metadata_log_dir {
            if self.errors.contains_key(dir) {
                return Err(invalid(format!(
                    "Encountered I/O error in metadata log directory {}. Cannot continue.",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// The cluster id of the first formatted directory that has one.
    pub fn cluster_id(&self) -> Option<&str> {
        self.props.values().find_map(|m| m.cluster_id.as_deref())
    }

    /// The node id of the first formatted directory that has one.
    pub fn node_id(&self) -> Option<i32> {
        self.props.values().find_map(|m| m.node_id)
    }

    /// The directory ids in use.
    pub fn directory_ids(&self) -> BTreeSet<Uuid> {
        self.props.values().filter_map(|m| m.directory_id).collect()
    }
}

#[cfg(test)]
#[path = "meta_properties_tests.rs"]
mod tests;

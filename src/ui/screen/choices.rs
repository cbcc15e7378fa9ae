//! Pick-list values shared by the backup dialog, the schedule form, the
//! settings and the project filters of other screens: each wraps an engine
//! value and says how it reads.

use crate::engine::backup::{BackupKind, Codec};
use crate::engine::project::Project;

/// A project in a pick list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectChoice {
    pub id: String,
    pub name: String,
}

impl std::fmt::Display for ProjectChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&Project> for ProjectChoice {
    fn from(p: &Project) -> Self {
        ProjectChoice {
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }
}

/// A project filter in a pick list: every project, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFilter(pub Option<ProjectChoice>);

impl std::fmt::Display for ProjectFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("All projects"),
            Some(p) => f.write_str(&p.name),
        }
    }
}

impl ProjectFilter {
    /// "All projects", then each project.
    pub fn options(projects: &[Project]) -> Vec<ProjectFilter> {
        std::iter::once(ProjectFilter(None))
            .chain(
                projects
                    .iter()
                    .map(|p| ProjectFilter(Some(ProjectChoice::from(p)))),
            )
            .collect()
    }

    /// The filter for the chosen project id (all projects when none or unknown).
    pub fn selected(projects: &[Project], id: Option<&String>) -> ProjectFilter {
        ProjectFilter(
            id.and_then(|id| projects.iter().find(|p| &p.id == id))
                .map(ProjectChoice::from),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindChoice(pub BackupKind);

impl KindChoice {
    pub const ALL: [KindChoice; 5] = [
        KindChoice(BackupKind::Full),
        KindChoice(BackupKind::Incremental),
        KindChoice(BackupKind::Schema),
        KindChoice(BackupKind::Data),
        KindChoice(BackupKind::Roles),
    ];
}

impl std::fmt::Display for KindChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            BackupKind::Full => "Full (roles + schema + data + history)",
            BackupKind::Schema => "Schema only",
            BackupKind::Data => "Data only",
            BackupKind::Roles => "Roles only",
            BackupKind::PreRestore => "Pre-restore snapshot",
            BackupKind::Incremental => "Incremental (full, only changes stored)",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecChoice(pub Codec);

impl CodecChoice {
    pub const ALL: [CodecChoice; 3] = [
        CodecChoice(Codec::Zstd),
        CodecChoice(Codec::Xz),
        CodecChoice(Codec::None),
    ];
}

impl std::fmt::Display for CodecChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Codec::Zstd => "zstd (fast)",
            Codec::Xz => "xz (smallest, slow)",
            Codec::None => "none (plain SQL)",
        })
    }
}

/// A compression level, or the codec's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChoice(pub Option<u8>);

impl LevelChoice {
    pub fn all() -> Vec<LevelChoice> {
        std::iter::once(LevelChoice(None))
            .chain((0..=9).map(|l| LevelChoice(Some(l))))
            .collect()
    }
}

impl std::fmt::Display for LevelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("default"),
            Some(l) => write!(f, "{l}"),
        }
    }
}

/// Parallel data streams, or the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamsChoice(pub Option<u8>);

impl StreamsChoice {
    pub fn all() -> Vec<StreamsChoice> {
        std::iter::once(StreamsChoice(None))
            .chain(
                (1..=crate::engine::backup::options::MAX_STREAMS).map(|n| StreamsChoice(Some(n))),
            )
            .collect()
    }
}

impl std::fmt::Display for StreamsChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => write!(
                f,
                "default ({})",
                crate::engine::backup::options::DEFAULT_STREAMS
            ),
            Some(n) => write!(f, "{n}"),
        }
    }
}

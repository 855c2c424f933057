//! A directory namespace as the shared-memory backend sees it: the
//! directory its named segments live in, and the group that shares them.

use std::path::PathBuf;

/// The place of a directory namespace's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dir {
    /// The directory.
    pub(crate) path: PathBuf,
    /// The group of a group namespace (its objects are made 0660 with it).
    pub(crate) group: Option<u32>,
}

impl Dir {
    /// The directory, for messages.
    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }
}

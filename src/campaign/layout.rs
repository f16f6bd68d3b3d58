//! The names of a campaign directory's files, in one leaf module: the manifest, the state and
//! its lock are named by the campaign and by its state alike, which would otherwise import
//! each other.

/// The manifest `expand` writes and every later command reads.
pub const MANIFEST: &str = "campaign.json";
/// The campaign's job states and Slurm ids (see `state.rs`).
pub const STATE: &str = "state.json";
/// The lock held while `state.json` is read, changed and written.
pub const LOCK: &str = ".sweep.lock";
/// Changes to `state.json` since it was last written whole, one checksummed record a line.
pub const JOURNAL: &str = "state.journal";

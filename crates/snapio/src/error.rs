//! Error type of the crate: every variant names the file, the object and what was expected.

use std::path::PathBuf;

/// Everything that can go wrong reading a snapshot or writing a catalogue.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    /// The path does not exist (or no file of a multi-file set was found there).
    #[error("{path}: not found ({expected})")]
    NotFound {
        /// Path that was looked for.
        path: PathBuf,
        /// What was expected there.
        expected: String,
    },
    /// An operating-system I/O error.
    #[error("{path}: {context}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but carries no HDF5 signature.
    #[error(
        "{path}: not an HDF5 file (no HDF5 signature found; expected a snapshot in HDF5 format)"
    )]
    NotHdf5 {
        /// File concerned.
        path: PathBuf,
    },
    /// The HDF5 library reported an error (truncated or corrupt file, I/O failure, ...).
    #[error("{path}: {object}: {context}: {source}")]
    Hdf5 {
        /// File concerned.
        path: PathBuf,
        /// Group, dataset or attribute concerned ("/" for the file itself).
        object: String,
        /// What was being done.
        context: String,
        /// Underlying HDF5 error.
        #[source]
        source: hdf5::Error,
    },
    /// A required group is absent.
    #[error("{path}: missing group `{group}` ({expected})")]
    MissingGroup {
        /// File concerned.
        path: PathBuf,
        /// Group name.
        group: String,
        /// What it was needed for.
        expected: String,
    },
    /// A required attribute is absent.
    #[error("{path}: missing attribute `{object}/{attribute}` ({expected})")]
    MissingAttribute {
        /// File concerned.
        path: PathBuf,
        /// Group holding the attribute.
        object: String,
        /// Attribute name.
        attribute: String,
        /// What was expected.
        expected: String,
    },
    /// An attribute exists but its value is unusable.
    #[error("{path}: attribute `{object}/{attribute}`: expected {expected}, found {found}")]
    BadAttribute {
        /// File concerned.
        path: PathBuf,
        /// Group holding the attribute.
        object: String,
        /// Attribute name.
        attribute: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A required dataset is absent.
    #[error("{path}: missing dataset `{dataset}` ({expected})")]
    MissingDataset {
        /// File concerned.
        path: PathBuf,
        /// Full dataset path inside the file.
        dataset: String,
        /// What was expected.
        expected: String,
    },
    /// A dataset has the wrong shape (length or width).
    #[error("{path}: dataset `{dataset}`: expected shape {expected}, found {found:?}")]
    BadShape {
        /// File concerned.
        path: PathBuf,
        /// Full dataset path inside the file.
        dataset: String,
        /// Expected shape, in words.
        expected: String,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A dataset has an unusable element type.
    #[error("{path}: dataset `{dataset}`: expected element type {expected}, found {found}")]
    BadType {
        /// File concerned.
        path: PathBuf,
        /// Full dataset path inside the file.
        dataset: String,
        /// Expected type, in words.
        expected: String,
        /// Type found.
        found: String,
    },
    /// A NaN or infinite value was found where finite numbers are required.
    #[error("{path}: dataset `{dataset}`: row {row}: non-finite value {value} (expected finite numbers)")]
    NonFinite {
        /// File concerned.
        path: PathBuf,
        /// Full dataset path inside the file.
        dataset: String,
        /// Row index within that file.
        row: u64,
        /// Offending value.
        value: f64,
    },
    /// The snapshot (or the selected region) holds no star particles.
    #[error("{path}: no star particles ({detail})")]
    NoStars {
        /// First file of the snapshot.
        path: PathBuf,
        /// Why: no PartType4, all winds, region empty, ...
        detail: String,
    },
    /// The file's layout could not be recognised.
    #[error("{path}: unknown snapshot layout: looked for {looked_for}")]
    UnknownLayout {
        /// File concerned.
        path: PathBuf,
        /// What was looked for.
        looked_for: String,
    },
    /// Files of a multi-file set are missing or inconsistent.
    #[error("{path}: inconsistent snapshot file set: {detail}")]
    FileSet {
        /// File or folder given.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Invalid argument passed by the caller (not a file problem).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, SnapError>;

/// Wraps an HDF5 error with file, object and context.
pub(crate) fn h5err(
    path: &std::path::Path,
    object: &str,
    context: &str,
) -> impl FnOnce(hdf5::Error) -> SnapError {
    let path = path.to_path_buf();
    let object = object.to_string();
    let context = context.to_string();
    move |source| SnapError::Hdf5 {
        path,
        object,
        context,
        source,
    }
}

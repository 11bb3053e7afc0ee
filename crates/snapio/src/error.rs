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
    ///
    /// The I/O error is part of the message and deliberately not exposed as `source()`: a
    /// `{:#}` chain (anyhow) would print it twice.
    #[error("{path}: {context}: {error}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// Underlying error.
        error: std::io::Error,
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
    ///
    /// The message carries the HDF5 stack once, shortened by [`short_hdf5_message`] (the file,
    /// the failing HDF5 call and errno's text); the error is not also exposed as `source()`, so a
    /// `{:#}` chain (anyhow) prints it once.
    #[error("{path}: {object}: {context}: {}", short_hdf5_message(&error.to_string()))]
    Hdf5 {
        /// File concerned.
        path: PathBuf,
        /// Group, dataset or attribute concerned ("/" for the file itself).
        object: String,
        /// What was being done.
        context: String,
        /// Underlying HDF5 error.
        error: hdf5::Error,
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
    /// A finite value outside its valid range (mass <= 0, age or metallicity out of range,
    /// position outside the box, ...); see `docs/UNITS.md`, "Validation".
    #[error("{path}: dataset `{dataset}`: row {row}: value {value}: {problem}")]
    InvalidValue {
        /// File concerned.
        path: PathBuf,
        /// Full dataset (or header attribute) path inside the file.
        dataset: String,
        /// Row index within that file.
        row: u64,
        /// Offending value, as stored (code units), in words.
        value: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// Two star particles share one identity (ParticleIDs, child and generation numbers).
    #[error(
        "{path}: row {row} and {other_path}: row {other_row}: duplicate particle identity {uid} \
         (PartType4/ParticleIDs {id}, ParticleChildIDsNumber {child}, ParticleIDGenerationNumber \
         {generation}); identities must be unique (on_invalid = \"drop\" keeps the first)"
    )]
    DuplicateId {
        /// File of the first particle with that identity.
        path: PathBuf,
        /// Its PartType4 row within that file.
        row: u64,
        /// File of the second particle with that identity.
        other_path: PathBuf,
        /// Its PartType4 row within that file.
        other_row: u64,
        /// The duplicated identity ([`crate::particle_uid`]).
        uid: u64,
        /// `ParticleIDs` of the first particle.
        id: u64,
        /// `ParticleChildIDsNumber` of the first particle (0 if absent).
        child: u32,
        /// `ParticleIDGenerationNumber` of the first particle (0 if absent).
        generation: u32,
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
    move |error| SnapError::Hdf5 {
        path,
        object,
        context,
        error,
    }
}

/// Shortens an HDF5 error text to what a user needs: the failing call and errno's text.
///
/// HDF5 reports operating-system failures as a list of `key = value` details (`name = '...'`,
/// `errno = 28`, `error message = 'No space left on device'`, `flags`, `buf`, offsets ...). When
/// an errno is present, the text before that list is kept and the list becomes
/// `(errno 28: No space left on device)`; otherwise the text is returned unchanged.
pub fn short_hdf5_message(text: &str) -> String {
    let Some(errno_at) = text.find("errno = ") else {
        return text.to_string();
    };
    let digits: String = text[errno_at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let message = text
        .find("error message = '")
        .and_then(|k| {
            let rest = &text[k + 17..];
            rest.find('\'').map(|e| &rest[..e])
        })
        .unwrap_or("");
    // The detail list starts at the first `key = ` after the last ": " before it.
    let first_eq = text.find(" = ").unwrap_or(errno_at);
    let head_end = text[..first_eq].rfind(": ").unwrap_or(first_eq);
    let head = text[..head_end].trim_end_matches([',', ' ']);
    match (digits.is_empty(), message.is_empty()) {
        (false, false) => format!("{head} (errno {digits}: {message})"),
        (false, true) => format!("{head} (errno {digits})"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message and `source()` chain joined as anyhow's `{:#}` prints them.
    fn chain(e: &SnapError) -> String {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(x) = src {
            s.push_str(&format!(": {x}"));
            src = x.source();
        }
        s
    }

    #[test]
    fn hdf5_error_in_a_missing_folder_surfaces_once_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no_such_folder").join("snap.hdf5");
        let e = hdf5::File::create(&path)
            .map_err(h5err(&path, "/", "creating snapshot file"))
            .unwrap_err();
        let text = chain(&e);
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches("H5Fcreate").count(), 1, "{text}");
        assert_eq!(text.matches("snap.hdf5").count(), 1, "{text}");
        assert!(
            text.contains("errno 2: No such file or directory"),
            "{text}"
        );
        assert!(text.contains("creating snapshot file"), "{text}");
        assert!(!text.contains("o_flags"), "{text}");
    }

    #[test]
    fn hdf5_error_on_a_read_only_file_surfaces_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.hdf5");
        hdf5::File::create(&path).unwrap();
        let f = hdf5::File::open(&path).unwrap();
        let e = f
            .create_group("PartType4")
            .map_err(h5err(&path, "PartType4", "creating group"))
            .unwrap_err();
        let text = chain(&e);
        assert_eq!(text.matches("no write intent").count(), 1, "{text}");
        assert!(
            text.starts_with(&format!(
                "{}: PartType4: creating group: H5Gcreate",
                path.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn short_message_keeps_call_and_errno_text() {
        let full = "H5Dwrite(): can't write data: file write failed: time = Tue Dec  1 13:00:00 2026, \
                    filename = '/scratch/run/catalog.hdf5.tmp', file descriptor = 5, errno = 28, \
                    error message = 'No space left on device', buf = 0x7f, total write size = 524288, \
                    bytes this sub-write = 524288, bytes actually written = 18446744073709551615, offset = 0";
        assert_eq!(
            short_hdf5_message(full),
            "H5Dwrite(): can't write data: file write failed (errno 28: No space left on device)"
        );
        assert_eq!(
            short_hdf5_message("H5Gcreate2(): no write intent on file"),
            "H5Gcreate2(): no write intent on file"
        );
    }
}

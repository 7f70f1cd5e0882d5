//! The errors of discovery and route building, one variant per thing a caller may report or branch on.

use std::path::PathBuf;

/// Why discovering worker files or turning them into routes failed.
///
/// Every variant names the file, folder or glob at fault and its message says how to fix it.
/// Underlying causes (I/O, glob syntax) are kept as `source()` rather than repeated in the message,
/// so a cause chain printer shows each once.
#[derive(thiserror::Error, Debug)]
pub enum RouterError {
    /// Two worker files map to the same route pattern (parameter names do not count:
    /// `[id].js` and `[slug].js` in one folder collide), so one of them could never be reached.
    #[error(
        "route `{route}` is served by two files, `{}` and `{}`: rename or remove one of them",
        first.display(),
        second.display()
    )]
    Collision {
        /// The route pattern both files map to, with the prefix, e.g. `/app/about`.
        route: String,
        /// The file that sorts first (paths relative to the project root).
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },

    /// A user `--ignore` glob does not parse.
    #[error("invalid ignore glob `{glob}`: fix its syntax (e.g. `target/**` or `**/examples/**`)")]
    InvalidIgnore {
        /// The glob as the user wrote it.
        glob: String,
        /// The parser's explanation.
        #[source]
        source: globset::Error,
    },

    /// The project root is missing, is not a folder, or something under it cannot be read.
    #[error(
        "cannot read `{}` while looking for workers: check that it exists and is readable, or ignore it with --ignore",
        path.display()
    )]
    Walk {
        /// The file or folder that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file or folder name uses brackets in a way the router does not understand
    /// (`post-[id]`, `[a-b]`, `[]`, a catch-all that is not last, a parameter named twice).
    #[error("invalid route segment `{segment}` in `{}`: {reason}", file.display())]
    InvalidSegment {
        /// The worker file (relative to the project root).
        file: PathBuf,
        /// The offending file or folder name (without the extension for the file itself).
        segment: String,
        /// What is wrong and how to write it instead.
        reason: String,
    },

    /// A worker path that cannot become a route: not relative to the project root, empty or not UTF-8.
    #[error("cannot route `{}`: {reason}", file.display())]
    InvalidPath {
        /// The path as given.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

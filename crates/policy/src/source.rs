//! Where policy text comes from: the default set built into the binary, or an operator's
//! directory of `*.cedar` files read once at load.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::PolicyError;

/// Largest policy file read, in bytes: far above any hand-written file, small enough that a
/// wrong path (a log, a database) fails fast instead of being parsed.
pub const POLICY_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Most `*.cedar` files in one policy directory.
pub const POLICY_FILES_MAX: usize = 1000;
/// Deepest folder nesting searched below the policy directory (`purposes/` is depth 1).
pub const POLICY_DIR_DEPTH_MAX: usize = 4;

/// The published schema, also compiled in: the engine builds the entities and context it
/// describes, so operators cannot change it.
pub(crate) const SCHEMA_TEXT: &str = include_str!("../../../policies/custos.cedarschema");

/// The default policy set, `policies/` at build time (a test checks it matches the folder).
pub(crate) const DEFAULT_SOURCES: &[(&str, &str)] = &[
    (
        "actions.cedar",
        include_str!("../../../policies/actions.cedar"),
    ),
    (
        "break_glass.cedar",
        include_str!("../../../policies/break_glass.cedar"),
    ),
    ("case.cedar", include_str!("../../../policies/case.cedar")),
    (
        "cross_border.cedar",
        include_str!("../../../policies/cross_border.cedar"),
    ),
    (
        "machine.cedar",
        include_str!("../../../policies/machine.cedar"),
    ),
    (
        "protected.cedar",
        include_str!("../../../policies/protected.cedar"),
    ),
    (
        "purposes/account_recovery.cedar",
        include_str!("../../../policies/purposes/account_recovery.cedar"),
    ),
    (
        "purposes/analytics.cedar",
        include_str!("../../../policies/purposes/analytics.cedar"),
    ),
    (
        "purposes/app_function.cedar",
        include_str!("../../../policies/purposes/app_function.cedar"),
    ),
    (
        "purposes/data_subject_request.cedar",
        include_str!("../../../policies/purposes/data_subject_request.cedar"),
    ),
    (
        "purposes/emergency_request.cedar",
        include_str!("../../../policies/purposes/emergency_request.cedar"),
    ),
    (
        "purposes/fraud.cedar",
        include_str!("../../../policies/purposes/fraud.cedar"),
    ),
    (
        "purposes/internal_investigation.cedar",
        include_str!("../../../policies/purposes/internal_investigation.cedar"),
    ),
    (
        "purposes/legal_request.cedar",
        include_str!("../../../policies/purposes/legal_request.cedar"),
    ),
    (
        "purposes/security_incident.cedar",
        include_str!("../../../policies/purposes/security_incident.cedar"),
    ),
    (
        "purposes/support.cedar",
        include_str!("../../../policies/purposes/support.cedar"),
    ),
    (
        "purposes/trust_safety.cedar",
        include_str!("../../../policies/purposes/trust_safety.cedar"),
    ),
];

/// Every `*.cedar` file under `dir` (hidden entries skipped), as (path relative to `dir`
/// with `/` separators, text), sorted by path so loading is deterministic.
pub(crate) fn read_policy_dir(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let mut paths = Vec::new();
    collect_cedar_files(dir, dir, 0, &mut paths)?;
    paths.sort();
    if paths.is_empty() {
        return Err(PolicyError::Empty {
            path: dir.display().to_string(),
        });
    }
    let mut sources = Vec::with_capacity(paths.len());
    for (name, path) in paths {
        sources.push((
            name.clone(),
            read_text(&path, &name, POLICY_FILE_BYTES_MAX)?,
        ));
    }
    Ok(sources)
}

/// The text of `path`, refusing files over `bytes_max`; errors name the file as `name`.
pub(crate) fn read_text(path: &Path, name: &str, bytes_max: u64) -> Result<String, PolicyError> {
    let read_error = |error: std::io::Error| PolicyError::Read {
        path: name.to_owned(),
        message: error.to_string(),
    };
    let length = fs::metadata(path).map_err(read_error)?.len();
    if length > bytes_max {
        return Err(PolicyError::FileTooLarge {
            file: name.to_owned(),
            length,
            maximum: bytes_max,
        });
    }
    fs::read_to_string(path).map_err(read_error)
}

fn collect_cedar_files(
    root: &Path,
    dir: &Path,
    depth: usize,
    found: &mut Vec<(String, PathBuf)>,
) -> Result<(), PolicyError> {
    let directory_error = |message: String| PolicyError::Directory {
        path: dir.display().to_string(),
        message,
    };
    let entries = fs::read_dir(dir).map_err(|error| directory_error(error.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|error| directory_error(error.to_string()))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(directory_error(format!(
                "file name {file_name:?} is not UTF-8"
            )));
        };
        if file_name.starts_with('.') {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|error| directory_error(error.to_string()))?;
        if file_type.is_dir() {
            if depth + 1 > POLICY_DIR_DEPTH_MAX {
                return Err(directory_error(format!(
                    "{file_name} is nested deeper than {POLICY_DIR_DEPTH_MAX} folders"
                )));
            }
            collect_cedar_files(root, &path, depth + 1, found)?;
        } else if file_name.ends_with(".cedar") {
            if found.len() == POLICY_FILES_MAX {
                return Err(directory_error(format!(
                    "more than {POLICY_FILES_MAX} policy files"
                )));
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|component| component.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push((name, path));
        }
    }
    Ok(())
}

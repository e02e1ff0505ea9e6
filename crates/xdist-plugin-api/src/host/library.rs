//! Opening one plugin library and checking its ABI (name, major version, layout in both
//! directions) before any of its code runs.

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::StableAbi;
use std::path::Path;

use super::discovery::{bare_name, PluginSource};
use super::error::PluginError;
use crate::abi::{PluginModuleRef, ABI_MAJOR, ABI_VERSION_STRING};

/// Opens `source` and returns its root module, or says why it is not a usable plugin.
pub(super) fn load_one(source: &PluginSource) -> Result<PluginModuleRef, PluginError> {
    let path = &source.path;
    if !path.is_file() {
        return Err(match bare_name(path) {
            Some(_) => PluginError::NotInstalled {
                name: path.display().to_string(),
                origin: source.origin,
            },
            None => PluginError::MissingFile {
                path: path.clone(),
                origin: source.origin,
            },
        });
    }
    let header = open_header(path)?;
    let plugin_version = check_version(path, header)?;
    check_layout(path, header, plugin_version)?;
    // SAFETY: the layout was checked by `check_layout`.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }.map_err(|e| {
        match e {
            LibraryError::IncompatibleVersionNumber { .. } => mismatch(path, plugin_version),
            other => not_plugin(path, other.to_string()),
        }
    })
}

fn not_plugin(path: &Path, reason: String) -> PluginError {
    PluginError::NotAPlugin {
        path: path.to_owned(),
        reason,
    }
}

fn mismatch(path: &Path, plugin: impl Into<String>) -> PluginError {
    PluginError::AbiMismatch {
        path: path.to_owned(),
        plugin: plugin.into(),
        host: ABI_VERSION_STRING.to_owned(),
    }
}

fn open_header(path: &Path) -> Result<&'static LibHeader, PluginError> {
    lib_header_from_path(path).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => not_plugin(path, format!("cannot load it: {err}")),
        LibraryError::GetSymbolError { .. } => {
            not_plugin(path, "it exports no abi_stable root module".to_owned())
        }
        LibraryError::InvalidAbiHeader(h) => mismatch(path, format!("(abi_stable header {h:?})")),
        other => not_plugin(path, other.to_string()),
    })
}

/// The root module's name and the ABI major version; returns the plugin's version string.
fn check_version(path: &Path, header: &'static LibHeader) -> Result<&'static str, PluginError> {
    let consts = header.root_mod_consts();
    if consts.name().as_str() != <PluginModuleRef as RootModule>::NAME {
        return Err(not_plugin(
            path,
            format!(
                "its root module is '{}', not '{}'",
                consts.name(),
                <PluginModuleRef as RootModule>::NAME
            ),
        ));
    }
    let plugin_version = header.version_strings();
    let major = VersionNumber::new(plugin_version).map(|v| v.major);
    if major != Ok(ABI_MAJOR) {
        return Err(mismatch(path, plugin_version.to_string()));
    }
    Ok(plugin_version.version.as_str())
}

/// abi_stable's own `init_root_module` only accepts a library whose root module has at
/// least the host's fields (a newer plugin). A plugin built before fields were appended has
/// fewer, so check the layout in both directions: either way, every field the two share
/// is verified compatible, and the prefix accessors read absent fields as `None` using the
/// library's own field count.
fn check_layout(path: &Path, header: &'static LibHeader, version: &str) -> Result<(), PluginError> {
    let Some(lib_layout) = header.layout() else {
        return Err(not_plugin(
            path,
            "its root module carries no layout information".to_owned(),
        ));
    };
    let host_layout = <PluginModuleRef as StableAbi>::LAYOUT;
    if let Err(forward) = check_layout_compatibility(host_layout, lib_layout) {
        if check_layout_compatibility(lib_layout, host_layout).is_err() {
            return Err(mismatch(
                path,
                format!(
                    "{version} with an incompatible layout ({})",
                    layout_error_summary(&forward.to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// The gist of abi_stable's (very long) layout error: its `Error:` lines.
pub(super) fn layout_error_summary(full: &str) -> String {
    let gist: Vec<String> = full
        .split("Error:")
        .skip(1)
        .map(|chunk| chunk.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut text = if gist.is_empty() {
        full.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        gist.join("; ")
    };
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_error_gist() {
        let s = layout_error_summary("lots of dump\nError:too many fields\nExpected:\n    18\n");
        assert_eq!(s, "too many fields Expected: 18");
    }
}

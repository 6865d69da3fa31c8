//! Named remote stores: `--remote lab` instead of `--remote /shared/group/repro-store`.
//! Names are defined in `.repro/config.yaml` of the folder repro runs in (the
//! project's, committed with it) or in `$XDG_CONFIG_HOME/repro/config.yaml`
//! (`~/.config/repro/config.yaml`, the user's), the project's winning:
//!
//! ```yaml
//! remotes:
//!   lab: /shared/group/repro-store
//! ```
//!
//! A relative path in a config file is relative to the folder that holds `.repro/`
//! (or the user's config folder). An argument with a `/` in it is always a path; a
//! bare word is a name when one is defined, and otherwise a folder; a bare word that
//! is neither, while names are defined, is taken for a mistyped name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The project's config file, relative to the folder repro runs in.
pub const PROJECT_CONFIG: &str = ".repro/config.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    remotes: BTreeMap<String, PathBuf>,
}

/// Where remote names come from: the project's and the user's config files.
#[derive(Debug, Clone)]
pub struct RemoteNames {
    /// Config files, the first one winning.
    files: Vec<PathBuf>,
}

impl RemoteNames {
    /// The config files of a run in `cwd`, for a user whose config folder is `user`.
    pub fn new(cwd: &Path, user: Option<PathBuf>) -> RemoteNames {
        let mut files = vec![cwd.join(PROJECT_CONFIG)];
        files.extend(user.map(|u| u.join("repro").join("config.yaml")));
        RemoteNames { files }
    }

    /// The config files of this process: its working folder's and the user's
    /// (`$XDG_CONFIG_HOME`, else `$HOME/.config`).
    pub fn of_this_process() -> RemoteNames {
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        RemoteNames::new(Path::new("."), user)
    }

    /// The remote store `arg` names: a path, or a name from a config file.
    pub fn resolve(&self, arg: &str) -> Result<PathBuf, String> {
        if arg.is_empty() {
            return Err("--remote: empty name".into());
        }
        if arg.contains(std::path::MAIN_SEPARATOR) || arg.contains('/') {
            return Ok(PathBuf::from(arg));
        }
        let mut names = Vec::new();
        for file in &self.files {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
            };
            let config: ConfigFile = serde_yaml::from_str(&text).map_err(|e| {
                format!(
                    "{}: {e} (expected `remotes: {{NAME: PATH}}`)",
                    file.display()
                )
            })?;
            if let Some(path) = config.remotes.get(arg) {
                let base = file
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."));
                return Ok(base.join(path));
            }
            names.extend(config.remotes.into_keys());
        }
        if names.is_empty() || Path::new(arg).exists() {
            return Ok(PathBuf::from(arg));
        }
        Err(format!(
            "--remote {arg}: no remote of that name (defined: {}) and no folder `{arg}`; define it under `remotes:` in {}, or write `./{arg}` for a new folder",
            names.join(", "),
            self.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, rel: &str, text: &str) {
        let file = dir.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    #[test]
    fn names_resolve_from_the_project_first_then_the_user() {
        let project = tempfile::tempdir().unwrap();
        let user = tempfile::tempdir().unwrap();
        config(
            project.path(),
            PROJECT_CONFIG,
            "remotes:\n  lab: /shared/lab\n  near: stores/near\n",
        );
        config(
            user.path(),
            "repro/config.yaml",
            "remotes:\n  lab: /elsewhere\n  mine: /home/me/store\n",
        );
        let names = RemoteNames::new(project.path(), Some(user.path().into()));
        assert_eq!(names.resolve("lab").unwrap(), PathBuf::from("/shared/lab"));
        assert_eq!(
            names.resolve("near").unwrap(),
            project.path().join("stores/near")
        );
        assert_eq!(
            names.resolve("mine").unwrap(),
            PathBuf::from("/home/me/store")
        );
        assert_eq!(names.resolve("./lab").unwrap(), PathBuf::from("./lab"));
        assert_eq!(names.resolve("/x/y").unwrap(), PathBuf::from("/x/y"));
    }

    #[test]
    fn an_unknown_name_says_which_are_defined_and_where() {
        let project = tempfile::tempdir().unwrap();
        config(
            project.path(),
            PROJECT_CONFIG,
            "remotes:\n  lab: /shared/lab\n",
        );
        let names = RemoteNames::new(project.path(), None);
        let err = names.resolve("labb").unwrap_err();
        assert!(err.contains("defined: lab"), "{err}");
        assert!(err.contains(".repro/config.yaml"), "{err}");
        let none = RemoteNames::new(Path::new("/nonexistent"), None);
        assert_eq!(
            none.resolve("new-store").unwrap(),
            PathBuf::from("new-store")
        );
    }

    #[test]
    fn a_malformed_config_file_is_named() {
        let project = tempfile::tempdir().unwrap();
        config(project.path(), PROJECT_CONFIG, "remote:\n  lab: /x\n");
        let err = RemoteNames::new(project.path(), None)
            .resolve("lab")
            .unwrap_err();
        assert!(
            err.contains("config.yaml") && err.contains("remote"),
            "{err}"
        );
    }
}

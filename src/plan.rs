//! What goes into a boot ramdisk, decided before any file is read: the
//! entries a request names (selected demos, `--elf` files, `--copies`),
//! each entry's name and expectation, and the check that every name the
//! boot options use (`args:NAME`, `drivers=`, `refusals=`) is one of them.
//! Every mistake is an error naming the option at fault: nothing is
//! silently truncated or ignored.
//!
//! Pure (no I/O), so the xtask compiles this file too and runs its tests
//! on the host (`cargo test -p xtask`).
use std::path::{Path, PathBuf};

/// Longest entry name the kernel keeps.
pub const MAX_NAME_LEN: usize = abi::MAX_NAME_LEN;

/// Where an entry's ELF comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The demo program of this name (in the build's user directory).
    Demo(String),
    /// A file given with `--elf`.
    Elf(PathBuf),
}

/// One ramdisk entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name (the process name).
    pub name: String,
    /// Whether it succeeds by being killed by a fault.
    pub fault: bool,
    /// Its ELF.
    pub source: Source,
    /// What put it there, for error messages (`the demo x`, `--elf PATH`,
    /// `--copies x=3`).
    pub origin: String,
}

/// What a boot image is asked to hold.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `--programs a,b` (None: the default set; with `--elf` alone: none).
    pub programs: Option<String>,
    /// `--elf PATH`s, in order.
    pub elves: Vec<PathBuf>,
    /// `--copies NAME=K`s.
    pub copies: Vec<(String, usize)>,
    /// Boot options, `(name, value)` without the `!`.
    pub options: Vec<(String, String)>,
}

/// Whether a program succeeds by being killed by a fault (the kernel checks
/// that): the `fault` demo and the `test-fault-*` attacks.
pub fn expects_fault(name: &str) -> bool {
    name == "fault" || name.starts_with("test-fault-")
}

/// Every demo selected by `--programs`: a name `x` selects the demo `x`
/// and its helpers `x-*` (for example `share` and `share-peer`). Without a
/// selection: every program except the `test-*` ones.
pub fn select(available: &[&str], selection: Option<&str>) -> Result<Vec<String>, String> {
    let Some(selection) = selection else {
        // The default set is the demos; `test-*` programs are for the tests.
        return Ok(available
            .iter()
            .filter(|p| !p.starts_with("test-"))
            .map(|s| s.to_string())
            .collect());
    };
    let mut chosen: Vec<String> = Vec::new();
    for want in selection.split(',').filter(|s| !s.is_empty()) {
        let prefix = format!("{want}-");
        let found: Vec<&&str> = available
            .iter()
            .filter(|p| **p == want || p.starts_with(&prefix))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "--programs: no program named `{want}` (have: {})",
                available.join(", ")
            ));
        }
        for name in found {
            if !chosen.iter().any(|c| c == name) {
                chosen.push(name.to_string());
            }
        }
    }
    Ok(chosen)
}

/// The entry name of an `--elf` file: its file stem, with any character
/// that is not printable ASCII replaced by `_`. Longer than
/// [`MAX_NAME_LEN`] is an error (a truncated name would not match what the
/// user passes to `--args` or `--driver`).
pub fn elf_name(path: &Path) -> Result<String, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or(format!("--elf {}: not a usable file name", path.display()))?;
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "--elf {}: its name `{name}` is {} characters, and program names are at \
             most {MAX_NAME_LEN}: rename (or copy) the file to a shorter name",
            path.display(),
            name.len()
        ));
    }
    Ok(name)
}

/// The entries `request` asks for, in boot order (demos, `--elf` files,
/// copies), with every name the boot options use checked against them.
pub fn plan(available: &[&str], request: &Request) -> Result<Vec<Entry>, String> {
    // With only --elf, boot just those; --programs adds demos to them.
    let demos = if request.programs.is_none() && !request.elves.is_empty() {
        Vec::new()
    } else {
        select(available, request.programs.as_deref())?
    };
    let mut entries: Vec<Entry> = demos
        .into_iter()
        .map(|name| Entry {
            fault: expects_fault(&name),
            source: Source::Demo(name.clone()),
            origin: format!("the demo `{name}`"),
            name,
        })
        .collect();
    let add = |entries: &mut Vec<Entry>, entry: Entry| match entries
        .iter()
        .find(|e| e.name == entry.name)
    {
        Some(taken) => Err(format!(
            "{}: the name `{}` is taken by {}",
            entry.origin, entry.name, taken.origin
        )),
        None => {
            entries.push(entry);
            Ok(())
        }
    };
    for path in &request.elves {
        let name = elf_name(path)?;
        let entry = Entry {
            name,
            fault: false,
            source: Source::Elf(path.clone()),
            origin: format!("--elf {}", path.display()),
        };
        add(&mut entries, entry)?;
    }
    for (name, count) in &request.copies {
        let origin = format!("--copies {name}={count}");
        // The program itself (a selected demo, an --elf file, or a demo
        // added by this option), then NAME-2 .. NAME-K.
        let (fault, source) = match entries.iter().find(|e| &e.name == name) {
            Some(e) => (e.fault, e.source.clone()),
            None if available.contains(&name.as_str()) => {
                let entry = Entry {
                    name: name.clone(),
                    fault: expects_fault(name),
                    source: Source::Demo(name.clone()),
                    origin: origin.clone(),
                };
                let fs = (entry.fault, entry.source.clone());
                entries.push(entry);
                fs
            }
            None => {
                return Err(format!(
                    "{origin}: no program named `{name}` (demos: {}; or an --elf file's name)",
                    available.join(", ")
                ))
            }
        };
        for i in 2..=*count {
            let copy = format!("{name}-{i}");
            if copy.len() > MAX_NAME_LEN {
                return Err(format!(
                    "{origin}: the copy's name `{copy}` is over {MAX_NAME_LEN} characters"
                ));
            }
            let entry = Entry {
                name: copy,
                fault,
                source: source.clone(),
                origin: origin.clone(),
            };
            add(&mut entries, entry)?;
        }
    }
    check_options(&entries, &request.options)?;
    Ok(entries)
}

/// Every program name a boot option uses must be an entry: `args:NAME`
/// (`run --args`), `drivers=a,b` (`--driver`), `refusals=a,b`.
fn check_options(entries: &[Entry], options: &[(String, String)]) -> Result<(), String> {
    let known = |name: &str, option: &str| {
        if entries.iter().any(|e| e.name == name) {
            Ok(())
        } else {
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            Err(format!(
                "{option}: no program named `{name}` in this run (it has: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        }
    };
    for (option, value) in options {
        if let Some(name) = option.strip_prefix("args:") {
            known(name, &format!("--args {name}=..."))?;
        } else if option == "drivers" {
            for name in value.split(',').filter(|n| !n.is_empty()) {
                known(name, &format!("--driver {name}"))?;
            }
        } else if option == "refusals" {
            for name in value.split(',').filter(|n| !n.is_empty()) {
                known(name, &format!("boot option refusals={name}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMOS: &[&str] = &["hello", "share", "share-peer", "fault", "test-x"];

    fn names(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn request(programs: Option<&str>, elves: &[&str]) -> Request {
        Request {
            programs: programs.map(String::from),
            elves: elves.iter().map(PathBuf::from).collect(),
            ..Request::default()
        }
    }

    #[test]
    fn selection_default_and_helpers() {
        let all = plan(DEMOS, &Request::default()).unwrap();
        assert_eq!(names(&all), ["hello", "share", "share-peer", "fault"]);
        assert!(all.iter().find(|e| e.name == "fault").unwrap().fault);
        let share = plan(DEMOS, &request(Some("share,share"), &[])).unwrap();
        assert_eq!(names(&share), ["share", "share-peer"]);
        let elf_only = plan(DEMOS, &request(None, &["/x/mine.elf"])).unwrap();
        assert_eq!(names(&elf_only), ["mine"]);
        assert_eq!(elf_only[0].source, Source::Elf("/x/mine.elf".into()));
        let why = plan(DEMOS, &request(Some("nope"), &[])).unwrap_err();
        assert!(why.contains("no program named `nope`"), "{why}");
    }

    #[test]
    fn long_elf_names_are_refused_not_truncated() {
        let ok = "a".repeat(MAX_NAME_LEN);
        assert_eq!(elf_name(Path::new(&format!("/t/{ok}.elf"))), Ok(ok));
        let long = format!("/t/{}", "b".repeat(MAX_NAME_LEN + 1));
        let why = plan(DEMOS, &request(None, &[&long])).unwrap_err();
        assert!(
            why.contains("33 characters") && why.contains("at most 32"),
            "{why}"
        );
        assert_eq!(elf_name(Path::new("/t/my prog")), Ok("my_prog".into()));
    }

    #[test]
    fn duplicate_names_say_what_they_clash_with() {
        let why = plan(DEMOS, &request(Some("hello"), &["/a/hello"])).unwrap_err();
        assert_eq!(
            why,
            "--elf /a/hello: the name `hello` is taken by the demo `hello`"
        );
        let why = plan(DEMOS, &request(None, &["/a/mine", "/b/mine.elf"])).unwrap_err();
        assert_eq!(
            why,
            "--elf /b/mine.elf: the name `mine` is taken by --elf /a/mine"
        );
        let mut r = request(None, &["/a/mine", "/a/mine-2"]);
        r.copies = vec![("mine".into(), 2)];
        let why = plan(DEMOS, &r).unwrap_err();
        assert_eq!(
            why,
            "--copies mine=2: the name `mine-2` is taken by --elf /a/mine-2"
        );
    }

    #[test]
    fn copies_of_demos_and_of_elf_files() {
        let mut r = request(Some("hello"), &["/a/mine"]);
        r.copies = vec![("mine".into(), 3), ("fault".into(), 2)];
        let entries = plan(DEMOS, &r).unwrap();
        assert_eq!(
            names(&entries),
            ["hello", "mine", "mine-2", "mine-3", "fault", "fault-2"]
        );
        assert_eq!(entries[2].source, Source::Elf("/a/mine".into()));
        assert!(entries[5].fault && !entries[3].fault);
        r.copies = vec![("nope".into(), 2)];
        let why = plan(DEMOS, &r).unwrap_err();
        assert!(
            why.starts_with("--copies nope=2: no program named `nope`"),
            "{why}"
        );
        let long = "c".repeat(MAX_NAME_LEN - 1);
        let mut r = request(None, &[&format!("/a/{long}")]);
        r.copies = vec![(long.clone(), 2)];
        assert!(plan(DEMOS, &r).unwrap_err().contains("over 32 characters"));
    }

    #[test]
    fn options_must_name_programs_of_the_run() {
        let with = |option: &str, value: &str| Request {
            options: vec![(option.into(), value.into())],
            ..request(Some("hello"), &["/a/mine"])
        };
        assert!(plan(DEMOS, &with("args:mine", "x")).is_ok());
        assert!(plan(DEMOS, &with("drivers", "hello,mine")).is_ok());
        assert!(plan(DEMOS, &with("trace", "1")).is_ok());
        assert_eq!(
            plan(DEMOS, &with("args:min", "x")).unwrap_err(),
            "--args min=...: no program named `min` in this run (it has: hello, mine)"
        );
        assert_eq!(
            plan(DEMOS, &with("drivers", "hello,share")).unwrap_err(),
            "--driver share: no program named `share` in this run (it has: hello, mine)"
        );
        assert!(plan(DEMOS, &with("refusals", "x"))
            .unwrap_err()
            .starts_with("boot option refusals=x:"));
    }
}

//! The binaries as a user runs them: help, version, and bad input.

use std::process::{Command, Output};

fn conch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conch"))
        .args(args)
        // A stray CONCH_* in the developer's shell must not change the answers.
        .env_remove("CONCH_ENDPOINTS")
        .env_remove("CONCH_LOG")
        .output()
        .expect("run conch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bad_input_exits_64_with_one_line_naming_the_argument() {
    let cases: &[(&[&str], &str)] = &[
        (&["elect"], "NAME"),
        (&["elect", "x", "--ttl", "1s", "--", "true"], "--ttl"),
        (&["sema", "x", "--max", "0", "--", "true"], "--max"),
        (&["elect", "x", "--bogus", "--", "true"], "--bogus"),
        (&["elect", "", "--", "true"], "NAME"),
        (
            &["elect", "x", "--cacert", "/nonexistent", "--", "true"],
            "--cacert",
        ),
        (
            &["--endpoints", "nope", "elect", "x", "--", "true"],
            "--endpoints",
        ),
    ];
    for (args, names) in cases {
        let o = conch(args);
        assert_eq!(o.status.code(), Some(64), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("conch: ") && err.contains(names),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_describes_options_and_exit_codes() {
    for tool in ["elect", "sema", "cron"] {
        let o = conch(&[tool, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let out = String::from_utf8_lossy(&o.stdout);
        for needle in ["--endpoints", "--ttl", "--kill-after", "EXIT CODES", "75"] {
            assert!(out.contains(needle), "{tool} --help lacks {needle}");
        }
    }
    let o = conch(&["help", "exit-codes"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("70"));
    let o = conch(&["help", "env"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("CONCH_REV"));
}

#[test]
fn version() {
    let o = conch(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("conch "));
}

#[test]
fn conchd_is_the_cron_daemon() {
    let o = Command::new(env!("CARGO_BIN_EXE_conchd"))
        .args(["--node", "."])
        .output()
        .expect("run conchd");
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("--node"));
}

#[test]
fn no_arguments_prints_the_usage() {
    let o = conch(&[]);
    assert_eq!(o.status.code(), Some(64));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    for needle in [
        "USAGE",
        "conch [OPTIONS] elect NAME",
        "cron add",
        "completions",
    ] {
        assert!(err.contains(needle), "usage lacks {needle}: {err}");
    }
}

/// The release the lock file pins, as `iana = 2025b`.
fn pinned_tzdata() -> String {
    let lock = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/schedule/tzdata.lock"
    ))
    .expect("read tzdata.lock");
    lock.lines()
        .find_map(|l| l.strip_prefix("iana = "))
        .expect("iana line")
        .trim()
        .to_string()
}

#[test]
fn version_names_commit_tzdata_and_tls() {
    let o = conch(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    let want_start = format!("conch {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.starts_with(&want_start), "{out}");
    let commit = out[want_start.len()..]
        .split(',')
        .next()
        .unwrap_or_default();
    assert!(
        commit == "unknown" || commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "commit {commit:?} in {out}"
    );
    assert!(
        out.contains(&format!("tzdata {}", pinned_tzdata())),
        "{out}"
    );
    assert!(out.contains("tls rustls"), "{out}");
    let o = conch(&["cron", "next", "@daily", "--count", "1", "--json"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("\"tzdata\":\"{}\"", pinned_tzdata())),
        "cron next --json names the release"
    );
}

/// What bash offers for the words of `line` (the last word is the one
/// being completed; a trailing space starts an empty one).
pub fn bash_complete(script: &str, line: &str, path: &str) -> Vec<String> {
    let o = Command::new("bash")
        .args([
            "-c",
            // As bash calls it: the line up to the cursor; COMP_WORDS as
            // bash splits it (at `:` and `=` too), which the script must not trust.
            r#"source "$1"; COMP_LINE="$2"; COMP_POINT=${#2};
               w="${2//:/ : }"; read -ra COMP_WORDS <<<"${w//=/ = }"; [[ $2 == *" " ]] && COMP_WORDS+=("");
               COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
               _conch; printf '%s\n' "${COMPREPLY[@]}""#,
            "bash",
            script,
            line,
        ])
        .env("PATH", path)
        .output()
        .expect("run bash");
    assert!(o.status.success(), "bash: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The script for `shell` in a file of its own (`test` keeps tests that run
/// at once apart).
fn script_file(shell: &str, test: &str) -> std::path::PathBuf {
    let o = conch(&["completions", shell]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path =
        std::env::temp_dir().join(format!("conch-cli-{}-{test}-{shell}", std::process::id()));
    std::fs::write(&path, &o.stdout).expect("write script");
    path
}

#[test]
fn bash_completion_follows_the_command_line() {
    let script = script_file("bash", "follow");
    let s = script.to_str().expect("utf-8 path");
    let path = std::env::var("PATH").unwrap_or_default();
    let cases: &[(&str, &[&str])] = &[
        ("conch el", &["elect"]),
        ("conch ", &["elect", "sema", "cron", "completions", "help"]),
        ("conch cron ", &["add", "ls", "rm", "next", "daemon"]),
        ("conch elect x --re", &["--restart"]),
        ("conch --ttl 5s sema x --m", &["--max"]),
        // bash's own words would split these at `:` and `=`.
        (
            "conch --endpoints 10.0.0.1:2379 elect x --re",
            &["--restart"],
        ),
        ("conch --prefix=/p cron ", &["add", "ls", "rm"]),
        ("conch cron add j --overlap ", &["skip", "allow"]),
        ("conch completions ", &["bash", "zsh", "fish"]),
        ("conchd --no", &["--node"]),
    ];
    for (line, want) in cases {
        let got = bash_complete(s, line, &path);
        for w in *want {
            assert!(got.iter().any(|g| g == w), "{line:?}: {got:?} lacks {w}");
        }
    }
    // An option of another tool is not offered.
    let got = bash_complete(s, "conch elect x --", &path);
    assert!(!got.iter().any(|g| g == "--max"), "{got:?}");
    assert!(got.iter().any(|g| g == "--endpoints"), "{got:?}");
    let _ = std::fs::remove_file(script);
}

#[test]
fn zsh_and_fish_scripts_parse() {
    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let script = script_file(shell, "parse");
        let o = Command::new(shell)
            .args(&check)
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("run {shell} ({e}): .ci/deps installs it"));
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let _ = std::fs::remove_file(script);
    }
}

/// What the zsh script hands to `compadd` for `line` (zsh itself filters
/// by the typed prefix), with zsh's completion builtins stood in by
/// functions that print what they are given.
fn zsh_offers(script: &str, line: &str) -> Vec<String> {
    let o = Command::new("zsh")
        .args([
            "-f",
            "-c",
            r#"compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
               _files() { print _files }; _normal() { print "_normal ${words[*]}" }; compdef() { : }
               source "$1"; words=(${(z)2}); [[ $2 == *" " ]] && words+=(""); CURRENT=${#words}; _conch"#,
            "zsh",
            script,
            line,
        ])
        .output()
        .expect("run zsh (.ci/deps installs it)");
    assert!(o.status.success(), "zsh: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What fish offers for `line` (`complete -C` filters by the prefix).
fn fish_offers(script: &str, line: &str) -> Vec<String> {
    let o = Command::new("fish")
        .args(["-c", "source $argv[1]; complete -C $argv[2]", script, line])
        .output()
        .expect("run fish (.ci/deps installs it)");
    assert!(o.status.success(), "fish: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn zsh_and_fish_completion_follow_the_command_line() {
    let zsh = script_file("zsh", "follow");
    let fish = script_file("fish", "follow");
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("conch el", &["elect"], &[]),
        ("conch cron ", &["add", "ls", "rm", "next", "daemon"], &[]),
        ("conch elect x --re", &["--restart"], &["--max"]),
        ("conch sema x --m", &["--max"], &["--restart"]),
        ("conch cron add j --overlap ", &["skip", "allow"], &[]),
        ("conchd --no", &["--node"], &[]),
    ];
    for (line, want, not) in cases {
        for (shell, got) in [
            ("zsh", zsh_offers(zsh.to_str().expect("utf-8"), line)),
            ("fish", fish_offers(fish.to_str().expect("utf-8"), line)),
        ] {
            for w in *want {
                assert!(
                    got.iter().any(|g| g == w),
                    "{shell} {line:?}: {got:?} lacks {w}"
                );
            }
            for n in *not {
                assert!(
                    !got.iter().any(|g| g == n),
                    "{shell} {line:?}: {got:?} offers {n}"
                );
            }
        }
    }
    let got = zsh_offers(zsh.to_str().expect("utf-8"), "conch elect x -- ec");
    assert_eq!(got, vec!["_normal ec"], "past `--` the child's command");
    let _ = std::fs::remove_file(zsh);
    let _ = std::fs::remove_file(fish);
}

//! What a user gets from a clean clone: `make install` lays out every file,
//! completion offers cron job names read from a real etcd, and the SBOM
//! lists the crates compiled in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{conch, free_port, scratch_dir, unique_prefix};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_conch"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// What the bash script offers for `line`, with this build's `conch` first
/// on PATH (the script calls `conch completions jobs`).
fn bash_complete(line: &str, env: &[(&str, &str)]) -> Vec<String> {
    let script = std::env::temp_dir().join(format!("conch-ship-{}.bash", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_conch"))
        .args(["completions", "bash"])
        .output()
        .expect("run conch");
    std::fs::write(&script, &o.stdout).expect("write script");
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.args([
        "-c",
        // As bash calls it: the line up to the cursor; COMP_WORDS as
        // bash splits it (at `:` and `=` too), which the script must not trust.
        r#"source "$1"; COMP_LINE="$2"; COMP_POINT=${#2};
               w="${2//:/ : }"; read -ra COMP_WORDS <<<"${w//=/ = }"; [[ $2 == *" " ]] && COMP_WORDS+=("");
               COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
               _conch; printf '%s\n' "${COMPREPLY[@]}""#,
        "bash",
    ])
    .arg(&script)
    .arg(line)
    .env("PATH", path);
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCH_") || k.starts_with("ETCDCTL_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run bash");
    assert!(
        o.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn completion_offers_cron_job_names_from_etcd() {
    let p = unique_prefix("complete-jobs");
    for name in ["backup", "backlog", "report"] {
        let o = conch(&p)
            .args(["cron", "add", name, "--schedule", "@daily", "--", "true"])
            .output()
            .expect("cron add");
        assert_eq!(o.status.code(), Some(0), "{name}");
    }
    let ep = &common::etcd().endpoint;
    // Endpoints and prefix as typed on the line being completed.
    let line = format!("conch --endpoints {ep} --prefix {p} cron rm ");
    let mut got = bash_complete(&line, &[]);
    got.sort();
    assert_eq!(got, vec!["backlog", "backup", "report"]);
    let got = bash_complete(
        &format!("conch --endpoints {ep} --prefix {p} cron ls back"),
        &[],
    );
    assert_eq!(got, vec!["backlog", "backup"]);
    // From the environment, as conch itself reads it.
    let got = bash_complete(
        "conch cron rm rep",
        &[("CONCH_ENDPOINTS", ep), ("CONCH_PREFIX", &p)],
    );
    assert_eq!(got, vec!["report"]);
    // Only the commands whose NAME is an existing job.
    let got = bash_complete(
        &format!("conch --endpoints {ep} --prefix {p} cron add "),
        &[],
    );
    assert!(got.is_empty(), "{got:?}");

    // Nothing listens: no names, no error on the terminal, no wait.
    let dead = format!("127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let got = bash_complete(
        &format!("conch --endpoints {dead} --prefix {p} cron rm "),
        &[],
    );
    assert!(got.is_empty(), "{got:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

fn make_install(dest: &Path, prefix: &str) {
    let o = Command::new("make")
        .current_dir(ROOT)
        .arg("--no-print-directory")
        .arg("install")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={prefix}"))
        .arg(format!("INSTALL_BIN={}", env!("CARGO_BIN_EXE_conch")))
        .output()
        .expect("run make");
    assert!(
        o.status.success(),
        "make install: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn make_install_lays_out_every_file() {
    let dest = scratch_dir("install");
    make_install(&dest, "/usr");
    let root = dest.join("usr");
    for f in [
        "bin/conch",
        "share/man/man1/conch.1",
        "share/man/man1/conch-elect.1",
        "share/man/man1/conch-sema.1",
        "share/man/man1/conch-cron.1",
        "share/man/man8/conchd.8",
        "share/bash-completion/completions/conch",
        "share/bash-completion/completions/conchd",
        "share/zsh/site-functions/_conch",
        "share/fish/vendor_completions.d/conch.fish",
        "lib/systemd/system/conchd.service",
        "share/doc/conch/LICENSE-MIT",
        "share/doc/conch/LICENSE-APACHE",
        "share/doc/conch/README.md",
        "share/doc/conch/docs/fencing.md",
    ] {
        assert!(root.join(f).exists(), "{f} not installed");
    }
    let link = std::fs::read_link(root.join("bin/conchd")).expect("conchd is a link");
    assert_eq!(link, Path::new("conch"));
    // The link is the daemon by name.
    let o = Command::new(root.join("bin/conchd"))
        .args(["--node", "."])
        .output()
        .expect("run conchd");
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--node"));

    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/conchd.service")).expect("read unit");
    assert!(unit.contains("ExecStart=/usr/bin/conchd\n"), "{unit}");
    assert!(unit.contains("KillMode=mixed"), "{unit}");
    assert!(!unit.contains('@'), "unsubstituted: {unit}");

    let bash = std::fs::read(root.join("share/bash-completion/completions/conch"))
        .expect("read completion");
    let fresh = Command::new(env!("CARGO_BIN_EXE_conch"))
        .args(["completions", "bash"])
        .output()
        .expect("run conch");
    assert_eq!(bash, fresh.stdout);

    // `man conch-elect` works from the installed tree.
    let o = Command::new("man")
        .env("MANPATH", root.join("share/man"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .args(["conch-elect"])
        .output()
        .expect("run man (.ci/deps installs man-db)");
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        page.contains("--restart") && page.contains("--who"),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn sbom_lists_the_crates_compiled_in() {
    let run = || {
        Command::new("python3")
            .current_dir(ROOT)
            .args(["dist/sbom.py", "x86_64-unknown-linux-musl"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("run dist/sbom.py")
    };
    let a = run();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let text = String::from_utf8_lossy(&a.stdout).to_string();
    let bom: miniserde::json::Value = miniserde::json::from_str(&text).expect("JSON");
    let miniserde::json::Value::Object(bom) = bom else {
        panic!("not an object")
    };
    let Some(miniserde::json::Value::Array(components)) = bom.get("components") else {
        panic!("no components")
    };
    let mut linked = Vec::new();
    for c in components {
        let miniserde::json::Value::Object(c) = c else {
            panic!("component is not an object")
        };
        let field = |k: &str| match c.get(k) {
            Some(miniserde::json::Value::String(s)) => s.clone(),
            _ => panic!("component without {k}"),
        };
        if field("scope") == "required" {
            linked.push(field("name"));
        }
        assert!(field("purl").starts_with("pkg:cargo/"));
        assert!(
            c.contains_key("hashes"),
            "{} has no checksum",
            field("name")
        );
    }
    for must in [
        "tonic",
        "prost",
        "tokio",
        "rustls",
        "ring",
        "lexopt",
        "miniserde",
        "rustix",
    ] {
        assert!(
            linked.iter().any(|n| n == must),
            "{must} missing: {linked:?}"
        );
    }
    for never in ["quickcheck", "syn", "protox"] {
        assert!(
            !linked.iter().any(|n| n == never),
            "{never} is not linked in"
        );
    }
    assert_eq!(a.stdout, run().stdout, "the SBOM is deterministic");
}

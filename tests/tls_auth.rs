//! TLS and authentication against real etcd members of this test binary's
//! own: one serving `https://` with client-certificate checks, one with
//! authentication enabled and a 2 s token TTL. The certificates are made
//! at run time with `openssl`; nothing here models etcd.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use common::{etcd_command, free_port, scratch_dir, wait_exit, wait_for, wait_ready};
use conch::etcd::{Client, ClientConfig, ErrorKind, Range, TlsFiles, WatchEvent, WatchSpec};

const LONG: Duration = Duration::from_secs(30);
/// etcd's `--auth-token-ttl` for the auth member: short, so that holds and
/// waits outlive their token.
const TOKEN_TTL: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- PKI

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate from the same CA, and a CA and client certificate that etcd
/// does not trust.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl on $PATH (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// An X.509 v1 certificate: `openssl x509 -req` without `-extfile`, as
/// many guides make client certificates.
fn make_v1_cert(dir: &Path, name: &str, ca: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
        ],
    );
}

fn make_cert(dir: &Path, name: &str, ca: &str, san: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
        ),
    )
    .expect("write ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn make_pki() -> Pki {
    let dir = scratch_dir("pki");
    make_ca(&dir, "ca");
    make_ca(&dir, "otherca");
    make_cert(&dir, "server", "ca", "IP:127.0.0.1,DNS:localhost");
    make_cert(&dir, "client", "ca", "DNS:conch-client");
    make_cert(&dir, "rogue", "otherca", "DNS:conch-client");
    make_v1_cert(&dir, "clientv1", "ca");
    Pki { dir }
}

// ---------------------------------------------------------------- members

struct Member {
    port: u16,
    pki: Option<Pki>,
}

impl Member {
    fn https(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn pki(&self) -> &Pki {
        self.pki.as_ref().expect("a TLS member")
    }
}

/// Starts a member from a thread that never exits: etcd gets a
/// parent-death signal, which follows the spawning thread.
fn start(setup: impl FnOnce() -> Member + Send + 'static) -> Member {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(setup());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("member started")
}

fn tls_files(pki: &Pki, cert: Option<&str>) -> TlsFiles {
    TlsFiles {
        ca: Some(pki.path("ca.pem")),
        cert: cert.map(|c| pki.path(&format!("{c}.pem"))),
        key: cert.map(|c| pki.path(&format!("{c}.key"))),
    }
}

/// A member that serves only `https://` and wants a client certificate
/// signed by `ca`.
fn tls_member() -> &'static Member {
    static M: OnceLock<Member> = OnceLock::new();
    M.get_or_init(|| {
        start(|| {
            let pki = make_pki();
            let dir = scratch_dir("etcd-tls");
            let (cp, pp) = (free_port(), free_port());
            let client_url = format!("https://127.0.0.1:{cp}");
            // Later flags win: the client URLs become https://.
            let mut child = etcd_command(&dir, cp, pp)
                .arg("--listen-client-urls")
                .arg(&client_url)
                .arg("--advertise-client-urls")
                .arg(&client_url)
                .arg("--cert-file")
                .arg(pki.path("server.pem"))
                .arg("--key-file")
                .arg(pki.path("server.key"))
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(pki.path("ca.pem"))
                .spawn()
                .expect("etcd on $PATH (apt-get install etcd-server)");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    let log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
                    panic!("TLS etcd exited early ({st}):\n{log}");
                }
                let mut cfg = ClientConfig::new(vec![client_url.clone()]);
                cfg.dial_timeout = Duration::from_millis(500);
                cfg.tls = tls_files(&pki, Some("client"));
                if Client::connect(cfg).is_ok_and(|c| c.range(Range::key("/ready")).is_ok()) {
                    break;
                }
                assert!(Instant::now() < deadline, "TLS etcd not ready after 20s");
                std::thread::sleep(Duration::from_millis(50));
            }
            Member {
                port: cp,
                pki: Some(pki),
            }
        })
    })
}

/// A plaintext member with authentication enabled: user root, and user
/// alice (password `pw`) whose role reads and writes `/ok/` only.
fn auth_member() -> &'static Member {
    static M: OnceLock<Member> = OnceLock::new();
    M.get_or_init(|| {
        start(|| {
            let dir = scratch_dir("etcd-auth");
            let (cp, pp) = (free_port(), free_port());
            let mut child = etcd_command(&dir, cp, pp)
                .arg("--auth-token")
                .arg("simple")
                .arg("--auth-token-ttl")
                .arg(TOKEN_TTL.as_secs().to_string())
                .spawn()
                .expect("etcd on $PATH (apt-get install etcd-server)");
            let ep = format!("http://127.0.0.1:{cp}");
            wait_ready(&ep, &mut child, &dir);
            for args in [
                &["user", "add", "root:rootpw"][..],
                &["user", "grant-role", "root", "root"],
                &["role", "add", "okrole"],
                &[
                    "role",
                    "grant-permission",
                    "okrole",
                    "--prefix=true",
                    "readwrite",
                    "/ok/",
                ],
                &["user", "add", "alice:pw"],
                &["user", "grant-role", "alice", "okrole"],
                &["auth", "enable"],
            ] {
                let out = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .env_remove("ETCDCTL_ENDPOINTS")
                    .arg("--endpoints")
                    .arg(&ep)
                    .args(args)
                    .output()
                    .expect("etcdctl on $PATH (apt-get install etcd-client)");
                assert!(
                    out.status.success(),
                    "etcdctl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Member {
                port: cp,
                pki: None,
            }
        })
    })
}

/// A facade client of the auth member as root (for checks behind conch's back).
fn root_client() -> Client {
    let mut cfg = ClientConfig::new(vec![auth_member().http()]);
    cfg.user = Some("root".into());
    cfg.password = Some("rootpw".into());
    Client::connect(cfg).expect("connect as root")
}

/// `conch` with a clean environment as far as its own variables go.
fn conch(endpoint: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_conch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCH_") || k.starts_with("ETCDCTL_") {
            c.env_remove(k);
        }
    }
    c.arg("--endpoints")
        .arg(endpoint)
        .arg("--dial-timeout")
        .arg("3s");
    c
}

fn run(mut c: Command) -> (Option<i32>, String, String) {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn conch");
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let _ = so.read_to_string(&mut out);
    err.push_str(&t.join().expect("stderr reader"));
    let st = wait_exit(&mut child, LONG);
    (st.code(), out, err)
}

static PREFIXES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh prefix under `/ok/`, the range alice may use.
fn ok_prefix(test: &str) -> String {
    let n = PREFIXES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("/ok/{}-{test}-{n}", std::process::id())
}

/// One counter from the member's Prometheus metrics (0 when absent).
fn metric(port: u16, name: &str, labels: &[&str]) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("metrics request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics answer");
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn touch(p: &Path) {
    std::fs::write(p, "").expect("touch");
}

/// A child that waits for `go` to appear, then exits with `code`.
fn wait_for_file(go: &Path, code: i32) -> String {
    format!(
        "while [ ! -e {} ]; do sleep 0.02; done; exit {code}",
        go.display()
    )
}

// ---------------------------------------------------------------- TLS

fn tls_conch(cacert: Option<&str>, cert: Option<&str>) -> Command {
    let m = tls_member();
    let pki = m.pki();
    let mut c = conch(&m.https());
    if let Some(ca) = cacert {
        c.arg("--cacert").arg(pki.path(&format!("{ca}.pem")));
    }
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(pki.path(&format!("{name}.pem")))
            .arg("--key")
            .arg(pki.path(&format!("{name}.key")));
    }
    c
}

fn elect_round(mut c: Command, name: &str, code: i32) -> (Option<i32>, String, String) {
    c.args(["--prefix", &format!("/tls-{}", std::process::id())])
        .args(["elect", name, "--", "sh", "-c", &format!("exit {code}")]);
    run(c)
}

#[test]
fn tls_with_the_right_client_certificate_runs_the_child() {
    let (code, _, err) = elect_round(tls_conch(Some("ca"), Some("client")), "right", 7);
    assert_eq!(code, Some(7), "stderr: {err}");
}

#[test]
fn tls_x509_v1_client_certificate_is_accepted_as_etcdctl_does() {
    let pki = tls_member().pki();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(pki.path("clientv1.pem"))
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "the test certificate must be v1"
    );
    let (code, _, err) = elect_round(tls_conch(Some("ca"), Some("clientv1")), "v1", 4);
    assert_eq!(code, Some(4), "stderr: {err}");
}

#[test]
fn tls_refusals_are_said_in_words_not_rust_values() {
    for (ca, cert) in [
        ("otherca", Some("client")),
        ("ca", None),
        ("ca", Some("rogue")),
    ] {
        let (code, _, err) = elect_round(tls_conch(Some(ca), cert), "words", 7);
        assert_eq!(code, Some(69), "stderr: {err}");
        for rust in [
            "Other(",
            "OtherError",
            "UnknownIssuer",
            "BadCertificate",
            "{ ",
            "Some(",
        ] {
            assert!(!err.contains(rust), "a Rust value in: {err}");
        }
    }
}

#[test]
fn tls_files_from_the_environment_and_a_bare_host_port() {
    // A bare host:port goes over TLS when a CA is given, as with etcdctl.
    let m = tls_member();
    let pki = m.pki();
    let mut c = conch(&format!("127.0.0.1:{}", m.port));
    c.env("CONCH_TLS_CACERT", pki.path("ca.pem"))
        .env("ETCDCTL_CERT", pki.path("client.pem"))
        .env("ETCDCTL_KEY", pki.path("client.key"));
    let (code, _, err) = elect_round(c, "env", 5);
    assert_eq!(code, Some(5), "stderr: {err}");
}

#[test]
fn tls_server_name_checked_against_a_dns_name_too() {
    let m = tls_member();
    let mut c = tls_conch(Some("ca"), Some("client"));
    // --endpoints again: the last one wins.
    c.arg("--endpoints")
        .arg(format!("https://localhost:{}", m.port));
    let (code, _, err) = elect_round(c, "dns", 3);
    assert_eq!(code, Some(3), "stderr: {err}");
}

#[test]
fn tls_without_a_client_certificate_fails_69() {
    let (code, _, err) = elect_round(tls_conch(Some("ca"), None), "nocert", 7);
    assert_eq!(code, Some(69), "stderr: {err}");
    assert!(
        err.contains("etcd requires a client certificate"),
        "stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no retry loop: {err}");
}

#[test]
fn tls_client_certificate_from_another_ca_fails_69() {
    let (code, _, err) = elect_round(tls_conch(Some("ca"), Some("rogue")), "rogue", 7);
    assert_eq!(code, Some(69), "stderr: {err}");
    assert!(
        err.contains("etcd refused the client certificate") && err.contains("rogue.pem"),
        "stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no retry loop: {err}");
}

#[test]
fn tls_untrusted_server_fails_69() {
    let start = Instant::now();
    let (code, _, err) = elect_round(tls_conch(Some("otherca"), Some("client")), "untrusted", 7);
    assert_eq!(code, Some(69), "stderr: {err}");
    assert!(
        err.contains("server certificate is signed by a CA that is not in --cacert"),
        "stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A certificate that does not verify is not retried until the dial
    // timeout (3s) runs out.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn tls_https_without_cacert_fails_69_and_says_so() {
    let (code, _, err) = elect_round(tls_conch(None, Some("client")), "noca", 7);
    assert_eq!(code, Some(69), "stderr: {err}");
    assert!(err.contains("needs --cacert"), "stderr: {err}");
}

#[test]
fn tls_user_on_a_member_without_auth_is_not_an_error() {
    // As etcd's own client does: "authentication is not enabled" means no
    // token is needed.
    let mut c = tls_conch(Some("ca"), Some("client"));
    c.args(["--user", "alice:pw"]);
    let (code, _, err) = elect_round(c, "noauth", 6);
    assert_eq!(code, Some(6), "stderr: {err}");
}

#[test]
fn tls_files_are_checked_when_connecting() {
    let m = tls_member();
    let pki = m.pki();
    let connect = |tls: TlsFiles| {
        let mut cfg = ClientConfig::new(vec![m.https()]);
        cfg.tls = tls;
        cfg.dial_timeout = Duration::from_secs(2);
        Client::connect(cfg).err().expect("refused")
    };
    let gone = pki.path("gone.pem");
    let e = connect(TlsFiles {
        ca: Some(gone.clone()),
        ..TlsFiles::default()
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(
        e.detail.contains(&gone.display().to_string()) && e.detail.contains("cannot read"),
        "{e}"
    );
    // A key in place of a CA bundle, a CA in place of a key.
    let e = connect(TlsFiles {
        ca: Some(pki.path("ca.key")),
        ..TlsFiles::default()
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(e.detail.contains("no PEM certificate"), "{e}");
    let e = connect(TlsFiles {
        key: Some(pki.path("ca.pem")),
        ..tls_files(pki, Some("client"))
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(e.detail.contains("no PEM private key"), "{e}");
    // A key that does not belong to the certificate.
    let e = connect(TlsFiles {
        key: Some(pki.path("rogue.key")),
        ..tls_files(pki, Some("client"))
    });
    assert_eq!(e.kind, ErrorKind::Tls);
    assert!(
        e.detail.contains("rogue.key") && e.detail.contains("does not belong to --cert"),
        "{e}"
    );
}

#[test]
fn tls_plaintext_client_at_a_tls_port_gives_up_within_the_dial_timeout() {
    let m = tls_member();
    let start = Instant::now();
    let mut c = conch(&m.http());
    c.args(["--dial-timeout", "1s"]);
    let (code, _, err) = elect_round(c, "plain", 7);
    assert_eq!(code, Some(69), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------- auth

fn alice(prefix: &str) -> Command {
    let mut c = conch(&auth_member().http());
    c.args(["--prefix", prefix]);
    c
}

#[test]
fn auth_elect_sema_and_cron_work_for_a_user_inside_its_range() {
    let p = ok_prefix("tools");
    // --user NAME:PASS
    let mut c = alice(&p);
    c.args([
        "--user", "alice:pw", "elect", "e", "--", "sh", "-c", "exit 7",
    ]);
    let (code, _, err) = run(c);
    assert_eq!(code, Some(7), "elect: {err}");

    // --password-file
    let d = scratch_dir("pwfile");
    let pwfile = d.join("pw");
    std::fs::write(&pwfile, "pw\n").expect("password file");
    let mut c = alice(&p);
    c.args(["--user", "alice", "--password-file"])
        .arg(&pwfile)
        .args(["sema", "s", "--max", "2", "--", "sh", "-c", "exit 5"]);
    let (code, _, err) = run(c);
    assert_eq!(code, Some(5), "sema: {err}");

    // CONCH_USER + CONCH_PASSWORD
    let mut c = alice(&p);
    c.env("CONCH_USER", "alice")
        .env("CONCH_PASSWORD", "pw")
        .args([
            "cron",
            "add",
            "nightly",
            "--schedule",
            "0 3 * * *",
            "--",
            "true",
        ]);
    let (code, _, err) = run(c);
    assert_eq!(code, Some(0), "cron add: {err}");

    // --user NAME + --password
    let mut c = alice(&p);
    c.args(["--user", "alice", "--password", "pw", "cron", "ls"]);
    let (code, out, err) = run(c);
    assert_eq!(code, Some(0), "cron ls: {err}");
    assert!(out.contains("nightly"), "cron ls: {out}");
}

#[test]
fn auth_wrong_password_fails_69_once() {
    let m = auth_member();
    let failed = |m: &Member| {
        metric(
            m.port,
            "grpc_server_handled_total",
            &[
                "grpc_method=\"Authenticate\"",
                "grpc_code=\"InvalidArgument\"",
            ],
        )
    };
    let before = failed(m);
    let mut c = alice(&ok_prefix("wrongpw"));
    c.args(["--user", "alice:nope", "elect", "e", "--", "true"]);
    let (code, _, err) = run(c);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("refused the credentials") && err.contains("authentication failed"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Only this test sends a wrong password: exactly one attempt.
    assert_eq!(failed(m) - before, 1);
}

#[test]
fn auth_without_a_user_fails_69_and_says_auth_is_on() {
    let mut c = alice(&ok_prefix("nouser"));
    c.args(["elect", "e", "--", "true"]);
    let (code, _, err) = run(c);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("give --user"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn auth_outside_the_users_range_fails_69_with_one_line() {
    let other = format!("/other/{}", std::process::id());
    for tool in [
        &["elect", "e", "--", "true"][..],
        &["sema", "s", "--max", "1", "--", "true"],
        &["elect", "e", "--who"],
        &["cron", "ls"],
        &["cron", "add", "j", "--schedule", "0 3 * * *", "--", "true"],
    ] {
        let mut c = alice(&other);
        c.args(["--user", "alice:pw"]).args(tool);
        let (code, _, err) = run(c);
        assert_eq!(code, Some(69), "{tool:?}: {err}");
        assert!(
            err.contains("permission denied") && err.contains("\"alice\""),
            "{tool:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{tool:?}: {err}");
    }
}

#[test]
fn auth_hold_outlives_its_token() {
    let p = ok_prefix("expiry");
    let d = scratch_dir("expiry");
    let go = d.join("go");
    let revokes_refused = |m: &Member| {
        metric(
            m.port,
            "grpc_server_handled_total",
            &[
                "grpc_method=\"LeaseRevoke\"",
                "grpc_code=\"Unauthenticated\"",
            ],
        )
    };
    let m = auth_member();
    let refused_before = revokes_refused(m);
    let mut c = alice(&p);
    c.args([
        "--user", "alice:pw", "--ttl", "4", "elect", "e", "--", "sh", "-c",
    ])
    .arg(wait_for_file(&go, 9));
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn conch");
    let root = root_client();
    let dir = conch::keys::Schema::new(&p).elect_dir("e");
    let mut key = Vec::new();
    wait_for("the hold", LONG, || {
        match root.range(Range::prefix(dir.clone())) {
            Ok(r) if !r.kvs.is_empty() => {
                key = r.kvs[0].key.clone();
                true
            }
            _ => false,
        }
    });
    let lease = root.range(Range::key(key.clone())).expect("range").kvs[0].lease;
    // The token dies after TOKEN_TTL without use; the holder only sends
    // keep-alives, which do not carry it. Let it die twice over, checking
    // all along that the keep-alives still renew the lease.
    let until = Instant::now() + TOKEN_TTL * 3;
    while Instant::now() < until {
        let st = root.lease_time_to_live(lease).expect("lease ttl");
        assert!(st.ttl >= 1, "lease not renewed: {st:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    touch(&go);
    let st = wait_exit(&mut child, LONG);
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert_eq!(st.code(), Some(9), "{err}");
    assert!(!err.contains("lost"), "{err}");
    // The resign went through with a renewed token (the key went at once,
    // not after the lease TTL), after etcd refused the expired one.
    let left = root.range(Range::key(key)).expect("range").kvs.len();
    assert_eq!(left, 0, "the lease was not revoked: {err}");
    assert!(
        revokes_refused(m) > refused_before,
        "the token never expired"
    );
}

#[test]
fn auth_waiter_outlives_its_token_and_takes_over() {
    let p = ok_prefix("waiter");
    let d = scratch_dir("waiter");
    let go = d.join("go");
    let spawn = |script: String| -> Child {
        let mut c = alice(&p);
        c.args(["--user", "alice:pw", "elect", "e", "--", "sh", "-c"])
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn conch")
    };
    let mut first = spawn(wait_for_file(&go, 3));
    let root = root_client();
    let dir = conch::keys::Schema::new(&p).elect_dir("e");
    let count = |root: &Client| root.range(Range::prefix(dir.clone())).expect("range").count;
    wait_for("the first hold", LONG, || count(&root) == 1);
    let mut second = spawn("exit 4".into());
    wait_for("the waiter", LONG, || count(&root) == 2);
    // The waiter's watch was opened with a token that now expires.
    std::thread::sleep(TOKEN_TTL * 2);
    touch(&go);
    assert_eq!(wait_exit(&mut first, LONG).code(), Some(3));
    assert_eq!(wait_exit(&mut second, LONG).code(), Some(4));
}

#[test]
fn auth_watch_opened_with_an_expired_token_is_canceled_by_etcd() {
    // What etcd does: the stream opens, and the watch is canceled, with
    // "invalid auth token" (3.4) or "permission denied" (3.5). The recipes
    // treat a canceled watch as connection trouble: they fail over, which
    // authenticates again.
    let mut cfg = ClientConfig::new(vec![auth_member().http()]);
    cfg.user = Some("alice".into());
    cfg.password = Some("pw".into());
    let c = Client::connect(cfg).expect("connect as alice");
    let key = format!("{}/k", ok_prefix("watch"));
    c.put(key.clone(), "1", 0).expect("put");
    std::thread::sleep(TOKEN_TTL * 2);
    let mut w = c.watch(WatchSpec::key(key.clone()));
    match c.next_event(&mut w, Duration::from_secs(10)) {
        Ok(WatchEvent::Canceled { reason }) => {
            assert!(
                reason.contains("auth token") || reason.contains("permission denied"),
                "{reason}"
            );
        }
        other => panic!("expected a canceled watch, got {other:?}"),
    }
    c.failover().expect("reconnect and authenticate");
    let rev = c.put(key.clone(), "2", 0).expect("put");
    let mut w = c.watch(WatchSpec::key(key).from_revision(rev));
    match c.next_event(&mut w, Duration::from_secs(10)) {
        Ok(WatchEvent::Events { events, .. }) => assert_eq!(events[0].kv.value, b"2"),
        other => panic!("expected the put, got {other:?}"),
    }
}

//! The text of `--help` and `conch help TOPIC`.

pub const EXIT_CODES: &str = "\
EXIT CODES
  child's code  the child ran and exited; its status is passed through (0-255)
  128+S         the child was killed by signal S (also when conch forwarded it)
  1             --who: vacant office / no holder; cron add: the job exists;
                cron show, suspend, resume, rm, export: no such job
  126, 127      the child could not be executed: not executable / not found
  64            usage error: nothing was written to etcd
  69            etcd unreachable within --dial-timeout, or credentials refused
  70            the hold was lost while the child ran (the child was stopped),
                or a waiter's lease was lost
  75            not acquired: --nonblock found no room, or --timeout ran out
  A child that itself exits 1, 64, 69, 70 or 75 is passed through unchanged:
  use -v output or --who to tell them apart.
";

pub const GLOBAL: &str = "\
GLOBAL OPTIONS (before or after the tool name, before `--`)
  --endpoints URL[,URL..]  etcd members: host:port, http://, https://, unix:///path
                           [env CONCH_ENDPOINTS, ETCDCTL_ENDPOINTS; http://127.0.0.1:2379]
  --prefix P               root of every key conch uses [env CONCH_PREFIX; /conch]
  --ttl D                  lease TTL, whole seconds, at least 2s [env CONCH_TTL; 10s]
  --kill-after D           SIGTERM-to-SIGKILL grace, at most TTL/2
                           [env CONCH_KILL_AFTER; 3s, TTL/3 when TTL < 9s]
  --dial-timeout D         give up reaching etcd after D (exit 69) [5s]
  --cacert F, --cert F, --key F
                           TLS for https:// endpoints [env CONCH_TLS_CACERT,
                           CONCH_TLS_CERT, CONCH_TLS_KEY, then ETCDCTL_*]
  --user NAME[:PASS], --password P, --password-file F
                           etcd authentication [env CONCH_USER, CONCH_PASSWORD]
  -v, --verbose / -q, --quiet
                           more / fewer diagnostics on stderr [env CONCH_LOG]
  -h, --help               this text
  Durations: 250ms, 10s, 1m30s, 2h; a bare number is seconds.
";

pub const TOP: &str = "\
conch: run shell commands under etcd coordination

USAGE
  conch [OPTIONS] elect NAME [--restart] [--nonblock|--timeout D] -- CMD [ARG..]
  conch [OPTIONS] elect NAME --who [--json] | --observe [--json]
  conch [OPTIONS] sema NAME --max N [--nonblock|--timeout D] -- CMD [ARG..]
  conch [OPTIONS] sema NAME [--max N] --who [--json]
  conch [OPTIONS] cron add NAME --schedule SPEC [..] -- CMD [ARG..]
  conch [OPTIONS] cron ls|show|run|suspend|resume|rm|export|apply|nodes [..]
  conch cron next SPEC [--tz ZONE] [--after RFC3339] [--count K]
  conchd [OPTIONS] [--node ID] [--label KEY=VALUE]..  (= conch cron daemon)
  conch completions bash|zsh|fish
  conch --version | conch help [elect|sema|cron|completions|exit-codes|env]
";

pub const ELECT: &str = "\
conch elect: at most one host runs the command at a time

USAGE
  conch [OPTIONS] elect NAME [--restart] [--nonblock|--timeout D] -- CMD [ARG..]
  conch [OPTIONS] elect NAME --who [--json]
  conch [OPTIONS] elect NAME --observe [--json]

OPTIONS
  --restart     leader-only service: restart the command whenever it exits
                (backoff 1s doubling to 60s, reset after 60s of stable run);
                on loss of the hold, campaign again
  --nonblock    if not leader at once, withdraw and exit 75
  --timeout D   stop waiting after D, withdraw and exit 75
  --who         print the leader and exit 0; exit 1 if the office is vacant
  --observe     print a line whenever the leader changes, until interrupted
  --json        with --who/--observe: JSON instead of text
";

pub const SEMA: &str = "\
conch sema: at most N commands run at once; waiters are served in arrival order

USAGE
  conch [OPTIONS] sema NAME --max N [--nonblock|--timeout D] -- CMD [ARG..]
  conch [OPTIONS] sema NAME [--max N] --who [--json]

OPTIONS
  --max N       number of slots, 1..=65535; contenders that disagree on N
                queue separately
  --nonblock    if no slot is free at once, withdraw and exit 75
  --timeout D   stop waiting after D, withdraw and exit 75
  --who         list holders (slot, host, pid, rev) and waiters; exit 1 when
                nobody holds
  --json        with --who: one JSON object
  The command sees CONCH_SLOT (in [0, N)) and CONCH_MAX.
";

pub const CRON: &str = "\
conch cron / conchd: every tick of a schedule runs at most once across a fleet

USAGE
  conch [OPTIONS] cron add NAME --schedule SPEC [--tz ZONE] [--overlap skip|allow]
        [--timeout D] [--kill-after D] [--keep K] [--catch-up D]
        [--on-failure CMD] [--where KEY=VALUE].. [--replace] -- CMD [ARG..]
  conch [OPTIONS] cron ls [NAME] [--json] [--last K]
  conch [OPTIONS] cron show NAME [--json]
  conch [OPTIONS] cron run NAME [--wait] [--timeout D]
  conch [OPTIONS] cron suspend NAME | cron resume NAME
  conch [OPTIONS] cron rm NAME [--purge]
  conch [OPTIONS] cron export [NAME..]
  conch [OPTIONS] cron apply -f FILE [--prune] [--dry-run]
  conch [OPTIONS] cron nodes [--json]
  conch cron next SPEC [--tz ZONE] [--after RFC3339] [--count K] [--json]
  conchd [OPTIONS] [--node ID] [--label KEY=VALUE].. [--metrics-file PATH]
         [--label-output|--no-label-output]       (= conch cron daemon)

COMMANDS
  add       store a job (exit 1 if it exists, unless --replace)
  ls        every job: schedule, next tick, last status, STATE (active,
            suspended, unmatched: placed where no live daemon matches,
            invalid); with NAME, its last K ticks (default 20) and their CAUSE
  show      the whole job as stored, its next ticks and its last result
  run       run the job now, exactly once across the fleet (cause `manual`);
            returns once a daemon claimed it; --wait: exit with its status
  suspend   daemons claim no tick of the job until `resume`; resuming never
            replays the ticks that fell in the suspension
  rm        delete the job (--purge: and its history)
  export    the jobs (or the NAMEs) as JSON lines, the stored format plus
            `name`; `apply -f` reads them back
  apply     create or replace the file's jobs in one transaction, all or
            nothing; a bad line is exit 64 with its number
  nodes     the live daemons: id, host, pid, version, since, runs, labels
  next      the next K ticks of SPEC, UTC and local; needs no etcd

OPTIONS
  --schedule SPEC     when to run (see SPEC below)
  --tz ZONE           IANA zone the schedule is read in [UTC]
  --overlap skip|allow
                      skip (default): a tick whose previous run still runs is
                      recorded `skipped`; allow: run anyway
  --timeout D         add: stop a run after D (SIGTERM, then SIGKILL after
                      --kill-after), recorded `timeout`; run: give up waiting
                      for a daemon to claim after D
  --kill-after D      add: the job's SIGTERM-to-SIGKILL grace [3s]
  --keep K            ticks of history kept per job [100]
  --catch-up D        after daemons or etcd were down, run the most recent
                      unclaimed tick once if it is no older than D (cause
                      `catch-up`); never a replay of every missed tick [off]
  --on-failure CMD    a shell command line (/bin/sh -c) run once, on the
                      daemon that ran the tick, when it ends failed, killed,
                      timeout or zombie (then on the daemon that found it); it
                      gets CONCH_JOB, CONCH_TICK, CONCH_STATUS, CONCH_EXIT or
                      CONCH_SIGNAL, CONCH_NODE
  --where KEY=VALUE   repeatable: only daemons with every such --label claim
  --replace           add: overwrite an existing job of that NAME
  --json              ls, show, nodes, next: JSON (lines) instead of tables
  --last K            ls NAME: how many ticks [20]
  --wait              run: wait for the run's result and exit with its status
  -f, --file FILE     apply: the JSON lines to apply (- for stdin)
  --prune             apply: also delete the jobs the file does not name
  --dry-run           apply: print what would change; write nothing
  --purge             rm: delete the history too
  --after RFC3339     next: list ticks after this instant [now]
  --count K           next: how many ticks [5]
  --node ID           daemon: its ID in claims [HOST:PID]
  --label KEY=VALUE   daemon, repeatable: labels that --where matches
  --metrics-file PATH daemon: write Prometheus text there every few seconds
                      (write and rename, the node_exporter textfile way)
  --label-output, --no-label-output
                      daemon: prefix each line of a job's output with the job
                      and tick [on]

STATUSES (ls, show)
  ok            exited 0            failed(N)   exited N
  killed(SIG)   ended by a signal   timeout     stopped after --timeout
  running       its runner is alive and running it
  skipped       --overlap skip, and the previous run was still going
  zombie        claimed, but no result and no live runner (its daemon died)
  missed        nobody claimed the tick within its grace
  CAUSE: schedule, manual (cron run) or catch-up.

SPEC: five fields `minute hour day-of-month month day-of-week`, or @hourly,
@daily, @weekly, @monthly, @yearly, @every D. Zones are IANA names (UTC
default) and travel with the job.
";

pub const ENV: &str = "\
ENVIRONMENT
  Read by conch: CONCH_ENDPOINTS (then ETCDCTL_ENDPOINTS), CONCH_PREFIX,
  CONCH_TTL, CONCH_KILL_AFTER, CONCH_TLS_CACERT/CERT/KEY (then ETCDCTL_CACERT/
  CERT/KEY), CONCH_USER, CONCH_PASSWORD, CONCH_LOG (quiet|normal|verbose).

  Given to the child, on top of conch's own environment:
  CONCH_NAME    the office, semaphore or job name, as typed
  CONCH_KEY     the etcd key that represents the hold
  CONCH_LEASE   the lease ID, 16 lowercase hex digits
  CONCH_REV     the fencing token: an etcd revision that strictly increases
                per office (elect) and per slot (sema)
  CONCH_SLOT, CONCH_MAX   sema only: the slot index in [0, N), and N
  CONCH_JOB, CONCH_TICK   cron only: the job and its tick (RFC 3339, UTC)
";

pub const COMPLETIONS: &str = "\
conch completions: tab completion for bash, zsh and fish

USAGE
  conch completions bash|zsh|fish
  conch [OPTIONS] completions jobs   (cron job names, one per line; the
                                      scripts call it for NAME after
                                      `cron ls` and `cron rm`)

  The scripts are also installed by `make install`; to try one now:
    source <(conch completions bash)
    conch completions fish | source
";

/// The full text for a tool's `--help`.
pub fn tool(name: &str) -> String {
    let body = match name {
        "elect" => ELECT,
        "sema" => SEMA,
        "completions" => COMPLETIONS,
        _ => CRON,
    };
    format!("{body}\n{GLOBAL}\n{EXIT_CODES}")
}

/// `conch help [TOPIC]`; `None` for an unknown topic.
pub fn topic(topic: Option<&str>) -> Option<String> {
    Some(match topic {
        None => format!("{TOP}\n{GLOBAL}\n{EXIT_CODES}"),
        Some("elect") | Some("sema") | Some("cron") | Some("completions") => {
            tool(topic.unwrap_or_default())
        }
        Some("exit-codes") => EXIT_CODES.to_string(),
        Some("env") => ENV.to_string(),
        Some(_) => return None,
    })
}

/// `conch --version`: what a bug report needs to name the exact build.
pub fn version() -> String {
    format!(
        "conch {} (commit {}, tzdata {}, tls rustls+ring)\n",
        env!("CARGO_PKG_VERSION"),
        env!("CONCH_COMMIT"),
        crate::schedule::tzdata_version(),
    )
}

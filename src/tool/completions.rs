//! `conch completions SHELL`: tab completion for bash, zsh and fish, written
//! from the parser's own option lists so the scripts cannot drift from
//! what conch accepts; and `conch completions jobs`, which the scripts call
//! to complete cron job names when etcd is reachable.

use super::connect::with_client;
use super::output::print;
use crate::cli::args::VALUE_OPTIONS;
use crate::cli::options::{allowed, GLOBAL, TOOLS};
use crate::cli::Global;
use crate::etcd::Range;
use crate::keys::{self, Schema};
use crate::kit::exit::{EXIT_UNAVAILABLE, EXIT_USAGE};

/// Cron commands whose NAME is an existing job. Only those the parser
/// knows are completed, so a command added to `TOOLS` later is picked up.
const JOB_COMMANDS: &[&str] = &["ls", "rm", "show", "run", "suspend", "resume", "export"];

/// Options that name a file, completed as paths.
const FILE_OPTIONS: &[&str] = &["cacert", "cert", "key", "password-file", "file"];

/// How long completion may wait for etcd before offering no job names: a
/// key press must not hang on a dead cluster.
const JOBS_DIAL: &str = "1s";

/// Prints the script for `shell` (one the parser accepted).
pub fn script(shell: &str) -> i32 {
    let text = match shell {
        "bash" => bash(),
        "zsh" => zsh(),
        "fish" => fish(),
        _ => {
            eprintln!("conch: completions {shell:?}: expected bash, zsh or fish");
            return EXIT_USAGE;
        }
    };
    print(&text);
    0
}

/// Prints every cron job's name, one per line, sorted by key.
pub fn jobs(global: &Global) -> i32 {
    with_client(global, |client| {
        let dir = Schema::new(&global.prefix).cron_job_dir();
        let r = match client.range(Range::prefix(dir.clone())) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("conch: cannot read the jobs: {}", e.detail);
                return EXIT_UNAVAILABLE;
            }
        };
        let mut text = String::new();
        for kv in &r.kvs {
            let name = Schema::leaf(&dir, &kv.key).and_then(|l| keys::decode_name(l).ok());
            // A name a shell word cannot carry as typed is left out rather
            // than offered in a form the user would have to fix by hand.
            if let Some(n) = name.filter(|n| !n.contains(char::is_whitespace)) {
                text.push_str(&n);
                text.push('\n');
            }
        }
        print(&text);
        0
    })
}

/// `--opt` for each name.
fn dashed(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("--{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The global options plus the ones `-v`/`-q` stand for.
fn global_opts() -> Vec<&'static str> {
    let mut g: Vec<&str> = GLOBAL.to_vec();
    g.extend(["verbose", "quiet"]);
    g
}

/// The top-level words a user can type first.
fn first_words() -> Vec<&'static str> {
    let mut w: Vec<&str> = Vec::new();
    for t in TOOLS {
        let head = t.split(' ').next().unwrap_or(t);
        if !w.contains(&head) {
            w.push(head);
        }
    }
    w.push("help");
    w
}

fn cron_commands() -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter_map(|t| t.strip_prefix("cron "))
        .collect()
}

fn job_commands() -> Vec<&'static str> {
    cron_commands()
        .into_iter()
        .filter(|c| JOB_COMMANDS.contains(c))
        .collect()
}

/// Global options that take a value: passed on to `completions jobs` so
/// job names come from the cluster and prefix the user typed.
fn global_values() -> Vec<&'static str> {
    GLOBAL
        .iter()
        .copied()
        .filter(|o| VALUE_OPTIONS.contains(o))
        .collect()
}

fn bash() -> String {
    let mut per_tool = String::new();
    for t in TOOLS {
        per_tool.push_str(&format!(
            "        \"{t}\") opts=\"$opts {}\" ;;\n",
            dashed(allowed(t))
        ));
    }
    format!(
        r#"# bash completion for conch and conchd, written by `conch completions bash`.
_conch() {{
    local cur prev i w tool="" pos=0 opts globals=() words=() cword
    COMPREPLY=()
    # The line split at blanks only: COMP_WORDS also splits at `:` and `=`,
    # which would cut `--endpoints host:2379` into pieces.
    local line="${{COMP_LINE:0:COMP_POINT}}"
    read -ra words <<<"$line"
    [[ ${{#words[@]}} -eq 0 || $line == *[[:blank:]] ]] && words+=("")
    cword=$((${{#words[@]}} - 1))
    cur="${{words[cword]}}"
    prev="${{words[cword-1]}}"
    [[ ${{words[0]##*/}} == conchd ]] && tool="cron daemon"
    for ((i = 1; i < cword; i++)); do
        w="${{words[i]}}"
        if [[ $w == -- ]]; then
            # Past `--` everything is the child's command line.
            if ((i == cword - 1)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
        case "$w" in
        {gvals})
            globals+=("$w" "${{words[i+1]}}"); ((i++)); continue ;;
        {gvals_eq})
            globals+=("$w"); continue ;;
        {values})
            ((i++)); continue ;;
        -*) continue ;;
        esac
        if [[ -z $tool ]]; then tool="$w"
        elif [[ $tool == cron ]]; then tool="cron $w"
        else ((pos++))
        fi
    done
    case "$prev" in
    {files}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --overlap) COMPREPLY=($(compgen -W "skip allow" -- "$cur")); return ;;
    {values}) return ;;
    esac
    opts="{globals_dashed}"
    case "$tool" in
{per_tool}        "") opts="$opts --version" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case "$tool" in
    "") COMPREPLY=($(compgen -W "{first}" -- "$cur")) ;;
    cron) COMPREPLY=($(compgen -W "{cron}" -- "$cur")) ;;
    help) ((pos == 0)) && COMPREPLY=($(compgen -W "elect sema cron completions exit-codes env" -- "$cur")) ;;
    completions) ((pos == 0)) && COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    {jobs_case})
        ((pos == 0)) && COMPREPLY=($(compgen -W "$(conch --dial-timeout {dial} "${{globals[@]}}" completions jobs 2>/dev/null)" -- "$cur")) ;;
    esac
}}
complete -F _conch conch conchd
"#,
        gvals = or_pattern(&global_values()),
        gvals_eq = global_values()
            .iter()
            .map(|n| format!("--{n}=*"))
            .collect::<Vec<_>>()
            .join("|"),
        values = or_pattern(VALUE_OPTIONS),
        files = or_pattern(FILE_OPTIONS),
        globals_dashed = dashed(&global_opts()),
        first = first_words().join(" "),
        cron = cron_commands().join(" "),
        jobs_case = job_commands()
            .iter()
            .map(|c| format!("\"cron {c}\""))
            .collect::<Vec<_>>()
            .join("|"),
        dial = JOBS_DIAL,
    )
}

/// `--a|--b|--c`, a case pattern.
fn or_pattern(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("--{n}"))
        .collect::<Vec<_>>()
        .join("|")
}

fn zsh() -> String {
    let mut per_tool = String::new();
    for t in TOOLS {
        per_tool.push_str(&format!(
            "        (\"{t}\") opts+=({}) ;;\n",
            dashed(allowed(t))
        ));
    }
    format!(
        r#"#compdef conch conchd
# zsh completion for conch and conchd, written by `conch completions zsh`.
_conch() {{
    local i w tool="" pos=0
    local -a opts globals
    local cur="${{words[CURRENT]}}" prev="${{words[CURRENT-1]}}"
    [[ ${{words[1]:t}} == conchd ]] && tool="cron daemon"
    for ((i = 2; i < CURRENT; i++)); do
        w="${{words[i]}}"
        if [[ $w == -- ]]; then
            # Past `--` everything is the child's command line.
            shift $i words
            (( CURRENT -= i ))
            _normal
            return
        fi
        case "$w" in
        ({gvals}) globals+=("$w" "${{words[i+1]}}"); ((i++)); continue ;;
        ({values}) ((i++)); continue ;;
        (-*) continue ;;
        esac
        if [[ -z $tool ]]; then tool="$w"
        elif [[ $tool == cron ]]; then tool="cron $w"
        else ((pos++))
        fi
    done
    case "$prev" in
    ({files}) _files; return ;;
    (--overlap) compadd -- skip allow; return ;;
    ({values}) return ;;
    esac
    opts=({globals_dashed})
    case "$tool" in
{per_tool}        ("") opts+=(--version) ;;
    esac
    if [[ $cur == -* ]]; then
        compadd -- $opts
        return
    fi
    case "$tool" in
    ("") compadd -- {first} ;;
    (cron) compadd -- {cron} ;;
    (help) ((pos == 0)) && compadd -- elect sema cron completions exit-codes env ;;
    (completions) ((pos == 0)) && compadd -- bash zsh fish ;;
    ({jobs_case})
        ((pos == 0)) && compadd -- ${{(f)"$(conch --dial-timeout {dial} $globals completions jobs 2>/dev/null)"}} ;;
    esac
}}
if [[ $funcstack[1] == _conch ]]; then
    _conch "$@"
else
    compdef _conch conch conchd
fi
"#,
        gvals = or_pattern(&global_values()),
        values = or_pattern(VALUE_OPTIONS),
        files = or_pattern(FILE_OPTIONS),
        globals_dashed = dashed(&global_opts()),
        first = first_words().join(" "),
        cron = cron_commands().join(" "),
        jobs_case = job_commands()
            .iter()
            .map(|c| format!("\"cron {c}\""))
            .collect::<Vec<_>>()
            .join("|"),
        dial = JOBS_DIAL,
    )
}

fn fish() -> String {
    let mut s = String::from(
        "# fish completion for conch and conchd, written by `conch completions fish`.\n\
         function __conch_globals\n    \
         set -l words (commandline -opc)\n    \
         set -l out\n    \
         for i in (seq 2 (count $words))\n        \
         if contains -- $words[$i] ",
    );
    s.push_str(&dashed(&global_values()));
    s.push_str(
        "\n            set -l j (math $i + 1)\n            \
         set -a out $words[$i] $words[$j]\n        \
         end\n    \
         end\n    \
         printf '%s\\n' $out\n\
         end\n\
         function __conch_jobs\n    \
         conch --dial-timeout ",
    );
    s.push_str(JOBS_DIAL);
    s.push_str(" (__conch_globals) completions jobs 2>/dev/null\nend\n");
    s.push_str("complete -c conch -f\ncomplete -c conchd -f\n");
    let tools = first_words().join(" ");
    for cmd in ["conch", "conchd"] {
        for g in global_opts() {
            s.push_str(&fish_opt(cmd, "", g));
        }
    }
    s.push_str("complete -c conch -n __fish_use_subcommand -l version\n");
    s.push_str(&format!(
        "complete -c conch -n __fish_use_subcommand -a '{tools}'\n"
    ));
    let crons = cron_commands().join(" ");
    s.push_str(&format!(
        "complete -c conch -n '__fish_seen_subcommand_from cron; and not __fish_seen_subcommand_from {crons}' -a '{crons}'\n"
    ));
    s.push_str(
        "complete -c conch -n '__fish_seen_subcommand_from help' -a 'elect sema cron completions exit-codes env'\n\
         complete -c conch -n '__fish_seen_subcommand_from completions' -a 'bash zsh fish'\n",
    );
    for t in TOOLS {
        let cond = match t.split_once(' ') {
            Some((_, sub)) => {
                format!("__fish_seen_subcommand_from cron; and __fish_seen_subcommand_from {sub}")
            }
            None => format!("__fish_seen_subcommand_from {t}"),
        };
        for o in allowed(t) {
            s.push_str(&fish_opt("conch", &cond, o));
        }
        if *t == "cron daemon" {
            for o in allowed(t) {
                s.push_str(&fish_opt("conchd", "", o));
            }
        }
    }
    let jobs = job_commands().join(" ");
    if !jobs.is_empty() {
        s.push_str(&format!(
            "complete -c conch -n '__fish_seen_subcommand_from cron; and __fish_seen_subcommand_from {jobs}' -a '(__conch_jobs)'\n"
        ));
    }
    s
}

/// One `complete` line for option `o` of `cmd` under condition `cond`.
fn fish_opt(cmd: &str, cond: &str, o: &str) -> String {
    let cond = if cond.is_empty() {
        String::new()
    } else {
        format!(" -n '{cond}'")
    };
    let arg = if FILE_OPTIONS.contains(&o) {
        " -r -F"
    } else if o == "overlap" {
        " -x -a 'skip allow'"
    } else if VALUE_OPTIONS.contains(&o) {
        " -x"
    } else {
        ""
    };
    format!("complete -c {cmd}{cond} -l {o}{arg}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option the parser accepts is offered by every script.
    #[test]
    fn every_option_is_in_every_script() {
        for (shell, text) in [("bash", bash()), ("zsh", zsh()), ("fish", fish())] {
            let mut all: Vec<&str> = global_opts();
            for t in TOOLS {
                all.extend(allowed(t));
            }
            for o in all {
                let needle = if shell == "fish" {
                    format!("-l {o}")
                } else {
                    format!("--{o}")
                };
                assert!(text.contains(&needle), "{shell} lacks {needle}");
            }
            for c in cron_commands() {
                assert!(text.contains(c), "{shell} lacks cron {c}");
            }
        }
    }

    #[test]
    fn job_names_are_completed_for_the_commands_the_parser_knows() {
        assert_eq!(
            job_commands(),
            vec!["ls", "rm", "run", "show", "suspend", "resume", "export"]
        );
        assert!(bash().contains("\"cron ls\"|\"cron rm\"|\"cron run\"|\"cron show\""));
    }
}

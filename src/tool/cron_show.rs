//! `conch cron show NAME [--json]`: the whole job as stored, its next
//! ticks, whether a live daemon may claim it, and its last result.

use miniserde::json::{self, Number, Object, Value};

use super::connect::connect;
use super::cron_history::{read, rows, Row};
use super::cron_nodes::{labels_json, labels_text, live, matched};
use super::host::now_ms;
use super::output::{dash, human_ms, opt_i32, opt_str, opt_u64, print, render, rfc3339_ms};
use crate::cli::{Global, Output};
use crate::keys::Schema;
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::record::cron::Job;
use crate::schedule::{fmt_rfc3339_utc, next_tick, Schedule, Zone};

/// How many upcoming ticks are shown.
const NEXT: usize = 3;

pub(super) fn run(global: &Global, name: &str, out: Output) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = Schema::new(&global.prefix);
    let now = now_ms();
    let read = read(&client, &schema, name, true).and_then(|(v, h)| {
        let nodes = live(&client, &schema)?;
        Ok((v, h, nodes))
    });
    let (value, history, nodes) = match read {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conch: cannot read job {name}: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let Some(value) = value else {
        eprintln!("conch: no job {name}");
        return 1;
    };
    let parsed = Job::from_json(&value).and_then(|job| {
        let sched = Schedule::parse(&job.schedule).map_err(|e| format!("schedule: {e}"))?;
        let zone = Zone::parse(&job.tz).map_err(|e| e.to_string())?;
        Ok((job, sched, zone))
    });
    let (job, sched, zone) = match parsed {
        Ok(v) => v,
        Err(reason) => {
            // What is stored is still worth seeing, to fix it.
            eprintln!("conch: job {name} is invalid: {reason}");
            print(&format!("{}\n", String::from_utf8_lossy(&value)));
            return 1;
        }
    };
    let mut next = Vec::new();
    let mut t = (now / 1000) as i64;
    while next.len() < NEXT {
        let Some(tick) = next_tick(&sched, &zone, t) else {
            break;
        };
        next.push(tick);
        t = tick;
    }
    let last = rows(&history, Some((&job, &sched, &zone)), now, 1).pop();
    let placed = matched(&nodes, &job.placement);
    let text = match out {
        Output::Json => json_text(name, &job, &next, placed, last.as_ref()),
        Output::Human => human_text(name, &job, &next, placed, last.as_ref()),
    };
    print(&text);
    0
}

fn human_text(name: &str, job: &Job, next: &[i64], placed: bool, last: Option<&Row>) -> String {
    let mut t: Vec<Vec<String>> = Vec::new();
    let mut row = |k: &str, v: String| t.push(vec![k.to_string(), v]);
    row("name", name.to_string());
    row("schedule", job.schedule.clone());
    row("zone", job.tz.clone());
    let ticks: Vec<String> = next.iter().map(|&n| fmt_rfc3339_utc(n)).collect();
    let ticks = dash((!ticks.is_empty()).then(|| ticks.join(" ")));
    row(
        "next",
        if job.suspended {
            format!("{ticks} (suspended: not claimed)")
        } else {
            ticks
        },
    );
    row("command", shell_words(&job.argv));
    row(
        "overlap",
        if job.overlap_allow { "allow" } else { "skip" }.into(),
    );
    row("timeout", dash(job.timeout_ms.map(human_ms)));
    row("kill-after", human_ms(job.kill_after_ms));
    row("keep", job.keep.to_string());
    row(
        "suspended",
        match (job.suspended, job.paused_at_ms) {
            (false, _) => "no".into(),
            (true, Some(at)) => format!("yes, since {}", rfc3339_ms(at)),
            (true, None) => "yes".into(),
        },
    );
    row("catch-up", job.catch_up_ms.map_or("off".into(), human_ms));
    row(
        "on-failure",
        dash((!job.on_failure.is_empty()).then(|| shell_words(&job.on_failure))),
    );
    let place = dash((!job.placement.is_empty()).then(|| labels_text(&job.placement)));
    row(
        "where",
        if placed {
            place
        } else {
            format!("{place} (unmatched: no live daemon matches)")
        },
    );
    let added = match job.added_at_ms {
        0 => job.added_by.clone(),
        at => format!("{} at {}", job.added_by, rfc3339_ms(at)),
    };
    row("added", added);
    let last = match last {
        None => "-".into(),
        Some(r) => {
            let mut s = format!("{} {}", fmt_rfc3339_utc(r.tick), r.status);
            if let Some(c) = r.cause_word() {
                s.push_str(&format!(" ({c})"));
            }
            if let Some(n) = &r.node {
                s.push_str(&format!(" on {n}"));
            }
            if let Some(d) = r.duration_ms() {
                s.push_str(&format!(" in {}", human_ms(d)));
            }
            s
        }
    };
    row("last", last);
    render(&t)
}

fn json_text(name: &str, job: &Job, next: &[i64], placed: bool, last: Option<&Row>) -> String {
    let strings = |v: &[String]| Value::Array(v.iter().map(|a| Value::String(a.clone())).collect());
    let mut o = Object::new();
    o.insert("name".into(), Value::String(name.into()));
    o.insert("schedule".into(), Value::String(job.schedule.clone()));
    o.insert("tz".into(), Value::String(job.tz.clone()));
    let ticks = next.iter().map(|&n| Value::String(fmt_rfc3339_utc(n)));
    o.insert("next".into(), Value::Array(ticks.collect()));
    o.insert("argv".into(), strings(&job.argv));
    let overlap = if job.overlap_allow { "allow" } else { "skip" };
    o.insert("overlap".into(), Value::String(overlap.into()));
    o.insert("timeout_ms".into(), opt_u64(job.timeout_ms));
    o.insert("kill_after_ms".into(), opt_u64(Some(job.kill_after_ms)));
    o.insert("keep".into(), opt_u64(Some(u64::from(job.keep))));
    o.insert("suspended".into(), Value::Bool(job.suspended));
    o.insert(
        "paused_at".into(),
        opt_str(job.paused_at_ms.map(rfc3339_ms)),
    );
    o.insert("catch_up_ms".into(), opt_u64(job.catch_up_ms));
    o.insert("on_failure".into(), strings(&job.on_failure));
    o.insert("where".into(), labels_json(&job.placement));
    o.insert("matched".into(), Value::Bool(placed));
    o.insert("added_by".into(), Value::String(job.added_by.clone()));
    let added = (job.added_at_ms > 0).then(|| rfc3339_ms(job.added_at_ms));
    o.insert("added_at".into(), opt_str(added));
    let last = last.map_or(Value::Null, |r| {
        let mut l = Object::new();
        l.insert("tick".into(), Value::String(fmt_rfc3339_utc(r.tick)));
        l.insert("unix".into(), Value::Number(Number::I64(r.tick)));
        l.insert("status".into(), Value::String(r.status.clone()));
        l.insert("cause".into(), opt_str(r.cause_word()));
        l.insert("node".into(), opt_str(r.node.clone()));
        l.insert("start".into(), opt_str(r.start_ms.map(rfc3339_ms)));
        l.insert("end".into(), opt_str(r.end_ms.map(rfc3339_ms)));
        l.insert("duration_ms".into(), opt_u64(r.duration_ms()));
        l.insert("exit".into(), opt_i32(r.exit));
        l.insert("signal".into(), opt_i32(r.signal));
        Value::Object(l)
    });
    o.insert("last".into(), last);
    format!("{}\n", json::to_string(&Value::Object(o)))
}

/// An argv as a shell would need it typed: plain words as they are, the
/// rest in single quotes.
fn shell_words(argv: &[String]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,@%+-".contains(c);
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(plain) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn commands_read_as_typed() {
        let argv = ["/bin/sh", "-c", "echo 'hi' $X", ""].map(String::from);
        assert_eq!(shell_words(&argv), r#"/bin/sh -c 'echo '\''hi'\'' $X' ''"#);
    }
}

//! `conch elect` (docs/usage.md): the acquisition part of a [`Hold`]. Create
//! the candidate key under the lease, wait for the predecessor's deletion,
//! lead when no older candidate is left. The lifecycle around it (the
//! child, losses, signals, resign) is `hold.rs`.

use super::hold::{find_own, Acquire, Deletions, Hold, Report, Retry, Won};
use crate::etcd::{Compare, Error, ErrorKind, EventKind, Op, Range, RangeResult, Txn, WatchSpec};
use crate::keys::Schema;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Level, Tag};

/// Watch tags.
const OWN: Tag = 1;
const PRED: Tag = 2;
/// Request tags.
const CAMPAIGN: Tag = 1;
const OFFICE: Tag = 2;

/// The elect recipe: a hold on the office of one name.
pub type Elect = Hold<Office>;
/// elect needs nothing beyond the hold's settings and the schema.
pub type Config = super::hold::Config<()>;

/// What elect retries on its own: a read of the office.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reread;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    ExpectCampaign,
    /// Watching the predecessor's key for its deletion.
    ExpectTurn,
    /// Re-reading the office (after a deletion, a reconnect, a compaction).
    ExpectOffice,
    Leading,
}

/// The office of one election: the candidates in creation order.
pub struct Office {
    name: String,
    schema: Schema,
    state: State,
    leader: bool,
    key: String,
    lease: i64,
    rev: i64,
    /// The number ahead last logged.
    ahead: Option<usize>,
    /// The predecessor to watch and the read's revision, until we do.
    pred: Option<(Vec<u8>, i64, usize)>,
}

impl Office {
    fn office(&self) -> Range {
        Range::prefix(self.schema.elect_dir(&self.name)).by_create()
    }

    /// Create-only, keyed by the lease, and both branches read the office:
    /// a retry after an unknown outcome is harmless and still answers.
    fn campaign_txn(&self, lease: i64, record: String) -> Txn {
        Txn {
            compare: vec![Compare::absent(self.key.clone())],
            success: vec![
                Op::put(self.key.clone(), record, lease),
                Op::Get(self.office()),
            ],
            failure: vec![Op::Get(self.office())],
        }
    }

    /// Re-validates everything from a fresh read of the office.
    fn on_office(&mut self, r: &RangeResult, out: &mut Vec<Action>) -> Option<Report<Reread>> {
        let Some(rev) = find_own(r, &self.key, OWN, out) else {
            return Some(Report::Gone(Gone("own candidate key is gone".into())));
        };
        self.rev = rev;
        if self.leader {
            return None;
        }
        let ahead: Vec<_> = r
            .kvs
            .iter()
            .filter(|kv| kv.create_revision < self.rev)
            .collect();
        let Some(pred) = ahead.iter().max_by_key(|kv| kv.create_revision) else {
            self.leader = true;
            self.state = State::Leading;
            out.push(Action::Unwatch(PRED));
            return Some(Report::Won(Won {
                key: self.key.clone(),
                rev: self.rev,
                label: String::new(),
                env: vec![],
            }));
        };
        self.pred = Some((pred.key.clone(), r.revision, ahead.len()));
        Some(Report::Ahead(format!("{} ahead", ahead.len())))
    }

    fn read(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Range(OFFICE, self.office()));
    }
}

impl Acquire for Office {
    type Retry = Reread;
    type Settings = ();

    fn new(name: &str, schema: Schema, _: ()) -> Office {
        Office {
            name: name.to_string(),
            schema,
            state: State::Idle,
            leader: false,
            key: String::new(),
            lease: 0,
            rev: 0,
            ahead: None,
            pred: None,
        }
    }

    fn join(&mut self, lease: i64, record: String, out: &mut Vec<Action>) {
        self.lease = lease;
        self.key = self.schema.elect_key(&self.name, lease);
        self.state = State::ExpectCampaign;
        out.push(Action::Txn(CAMPAIGN, self.campaign_txn(lease, record)));
    }

    fn joined(&self) -> bool {
        self.rev != 0
    }

    fn held(&self) -> bool {
        self.leader
    }

    fn reset(&mut self) {
        self.leader = false;
        self.rev = 0;
        self.ahead = None;
        self.state = State::Idle;
    }

    fn unwatch(&self, out: &mut Vec<Action>) {
        out.push(Action::Unwatch(OWN));
        out.push(Action::Unwatch(PRED));
    }

    fn resync(&mut self, out: &mut Vec<Action>) {
        if !self.leader {
            self.state = State::ExpectOffice;
        }
        self.read(out);
    }

    fn retry(&mut self, _: Reread, out: &mut Vec<Action>) {
        self.state = State::ExpectOffice;
        self.read(out);
    }

    fn wait_turn(&mut self, out: &mut Vec<Action>) {
        let Some((key, revision, n)) = self.pred.take() else {
            return;
        };
        if self.ahead != Some(n) {
            out.push(Action::Log(Level::Info, format!("waiting ({n} ahead)")));
            self.ahead = Some(n);
        }
        out.push(Action::Watch(
            PRED,
            WatchSpec::key(key)
                .from_revision(revision + 1)
                .deletes_only(),
        ));
        self.state = State::ExpectTurn;
    }

    fn answer(&mut self, input: Input, out: &mut Vec<Action>) -> Option<Report<Reread>> {
        match input {
            Input::Txn(CAMPAIGN, r) if self.state == State::ExpectCampaign => match r {
                Ok(t) => {
                    let office = if t.succeeded { t.range(1) } else { t.range(0) };
                    match office {
                        Some(o) => {
                            let o = o.clone();
                            self.on_office(&o, out)
                        }
                        None => {
                            let e = Error::new(
                                ErrorKind::Other,
                                "txn",
                                "campaign answer without the office read",
                            );
                            Some(Report::Failed(e, Retry::Join))
                        }
                    }
                }
                Err(e) => Some(Report::Failed(e, Retry::Join)),
            },
            Input::Range(OFFICE, r) => match r {
                Ok(o) if self.state == State::ExpectOffice || self.leader => {
                    self.on_office(&o, out)
                }
                Ok(_) => None,
                Err(e) if self.state == State::ExpectOffice => {
                    Some(Report::Failed(e, Retry::Part(Reread)))
                }
                Err(e) => Some(Report::Broken(e)),
            },
            _ => None,
        }
    }

    fn deleted(&mut self, seen: Deletions<'_>, out: &mut Vec<Action>) -> Option<Report<Reread>> {
        let Deletions { tag, events, .. } = seen;
        let at = events
            .iter()
            .find(|e| e.kind == EventKind::Delete)
            .map(|e| e.kv.mod_revision)?;
        if tag == OWN {
            return Some(Report::Gone(Gone("own candidate key was deleted".into())));
        }
        if tag == PRED && self.state == State::ExpectTurn {
            // With a timestamped -v log, this line tells a late delete (etcd
            // expired the lease late) from a late promotion.
            out.push(Action::Log(
                Level::Debug,
                format!("predecessor gone at revision {at}; re-reading the office"),
            ));
            self.state = State::ExpectOffice;
            self.read(out);
        }
        None
    }
}

#[cfg(test)]
#[path = "elect_tests.rs"]
mod tests;

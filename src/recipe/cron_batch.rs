//! Requests that go together: the claims of one step (the due jobs of a
//! claim group, cron_rank.rs) as one request, and the results of runs
//! that end together as one more. Each transaction keeps its own compares
//! and branches inside the batch, so it is decided exactly as if it were
//! sent alone; the batch shares only the request, its revision and its
//! fate in transit.

use super::*;

/// How long a finished run's result waits for the results of the other
/// runs of this daemon, to go to etcd in one request with them.
pub(super) const FINISH_HOLD: Duration = Duration::from_millis(50);

impl Cron {
    /// Sends the claims of this step: one alone as it is, several (the
    /// jobs of a claim group due at one tick, cron_rank.rs) as the nested
    /// transactions of one request. Each nested claim keeps its own
    /// compares and branches, so each is decided alone, as if sent alone;
    /// only the request, its revision and its fate in transit are shared.
    /// Never two of one job in a request: etcd evaluates every compare of a
    /// request before it applies any operation, so a second tick's overlap
    /// compare would not see the run marker the first one puts, nor a
    /// cleanup's delete. Those go in a later request, in their order.
    pub(super) fn flush_claims(&mut self, out: &mut Vec<Action>) {
        let mut batches: Vec<Vec<(Txn, Pending)>> = Vec::new();
        for (txn, p) in std::mem::take(&mut self.outbox) {
            let after = batches
                .iter()
                .rposition(|b| b.iter().any(|(_, q)| q.name == p.name))
                .map_or(0, |i| i + 1);
            match batches.get_mut(after) {
                Some(b) => b.push((txn, p)),
                None => batches.push(vec![(txn, p)]),
            }
        }
        for mut batch in batches {
            if batch.len() == 1 {
                if let Some((txn, p)) = batch.pop() {
                    out.push(Action::Txn(CLAIM, txn));
                    self.claims.push_back(vec![p]);
                }
                continue;
            }
            let (txns, ps): (Vec<Txn>, Vec<Pending>) = batch.into_iter().unzip();
            out.push(Action::Txn(CLAIM, batched(txns)));
            self.claims.push_back(ps);
        }
    }

    /// Sends the held results once no other run of this daemon is left to
    /// end with them, or they have waited [`FINISH_HOLD`], or the daemon
    /// stops: several go as the nested transactions of one request.
    pub(super) fn flush_finishes(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some(since) = self.ended_since else {
            return;
        };
        let others = self.runs.values().any(|r| !r.hook);
        if others && self.shutting_down.is_none() && now < since + FINISH_HOLD {
            return;
        }
        self.ended_since = None;
        let mut batch = std::mem::take(&mut self.ended);
        if batch.len() == 1 {
            self.send_finish(batch.remove(0), out);
            return;
        }
        for f in &mut batch {
            f.attempts += 1;
        }
        let txns = batch.iter().map(|f| f.txn.clone()).collect();
        out.push(Action::Txn(FINISH, batched(txns)));
        self.finishes.push_back(batch);
    }
}

/// One request holding `txns` as nested transactions of its success
/// branch, with no compare of its own: etcd applies them in order, each
/// on its own compares, in one revision.
pub(super) fn batched(txns: Vec<Txn>) -> Txn {
    Txn {
        compare: vec![],
        success: txns.into_iter().map(Op::Txn).collect(),
        failure: vec![],
    }
}

/// Each of `parts` with its own answer: the whole answer when it was sent
/// alone, its nested one when batched.
pub(super) fn answers<T>(
    parts: Vec<T>,
    r: &Result<TxnResult, Error>,
    op: &'static str,
) -> Vec<(T, Result<TxnResult, Error>)> {
    if parts.len() == 1 {
        return parts.into_iter().map(|p| (p, r.clone())).collect();
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, unbatched(r, i, op)))
        .collect()
}

/// The answer to the `i`-th transaction of a [`batched`] request, with the
/// request's revision (etcd leaves nested headers empty). A batch that
/// failed in transit failed for each of its transactions alike.
fn unbatched(r: &Result<TxnResult, Error>, i: usize, op: &'static str) -> Result<TxnResult, Error> {
    let t = r.as_ref().map_err(Clone::clone)?;
    let mut nested = t.txn(i).cloned().ok_or_else(|| {
        Error::new(
            crate::etcd::ErrorKind::Other,
            op,
            format!("a batched request answered without its transaction {i}"),
        )
    })?;
    nested.revision = t.revision;
    Ok(nested)
}

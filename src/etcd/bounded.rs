//! Calls that carry the instant they must end by. A holder's event loop
//! makes each of its requests through [`Client::by`] with the instant its
//! machine must act by, so a member that hangs cannot keep a holder past
//! the moment its child must stop; everyone else calls [`Client`] directly.

use std::time::{Duration, Instant};

use super::{Client, Lease, Range, RangeResult, Result, Txn, TxnResult};

/// A [`Client`] whose every call (dial, failover, request, retry) ends by
/// `at` at the latest; `None` leaves each call its own timeout.
#[derive(Clone, Copy)]
pub struct Bounded<'a> {
    client: &'a Client,
    at: Option<Instant>,
}

impl Client {
    /// The calls of this client, each ended by `at` at the latest.
    pub fn by(&self, at: Option<Instant>) -> Bounded<'_> {
        Bounded { client: self, at }
    }
}

impl Bounded<'_> {
    pub fn range(self, r: Range) -> Result<RangeResult> {
        self.client.range_by(r, self.at)
    }

    pub fn txn(self, t: Txn) -> Result<TxnResult> {
        self.client.txn_by(t, self.at)
    }

    pub fn lease_grant(self, ttl_secs: i64) -> Result<Lease> {
        self.client.lease_grant_by(ttl_secs, self.at)
    }

    pub fn lease_revoke(self, id: i64) -> Result<()> {
        self.client.lease_revoke_by(id, self.at)
    }

    pub fn failover(self) -> Result<()> {
        self.client.failover_at(self.at)
    }

    /// [`Client::failover_within`] `budget`, and by `at`.
    pub fn failover_within(self, budget: Duration) -> Result<()> {
        self.client.failover_by(budget, self.at)
    }
}

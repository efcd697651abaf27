//! The live daemons of the fleet, for ranking who claims a tick: the node
//! prefix is read with the jobs when the daemon registers, then watched,
//! so a daemon that joins, leaves or whose lease expires is seen at once,
//! without polling.

use super::*;

impl Cron {
    /// Every registration under the node prefix, as read at `revision`;
    /// then the watch from the revision after.
    pub(super) fn on_nodes(&mut self, kvs: &[KeyValue], revision: i64, out: &mut Vec<Action>) {
        self.nodes.clear();
        self.nodes_changed = true;
        for kv in kvs {
            self.node_put(kv);
        }
        out.push(Action::Watch(
            WATCH_NODES,
            WatchSpec::prefix(self.cfg.schema.cron_node_dir()).from_revision(revision + 1),
        ));
    }

    fn node_id(&self, key: &[u8]) -> Option<String> {
        Schema::leaf(&self.cfg.schema.cron_node_dir(), key)
            .and_then(|seg| crate::keys::decode_name(seg).ok())
    }

    /// A value that is no registration ranks nobody: it would only make
    /// every daemon wait for a node that never claims.
    fn node_put(&mut self, kv: &KeyValue) {
        let Some(id) = self.node_id(&kv.key) else {
            return;
        };
        self.nodes_changed = true;
        match Node::from_json(&kv.value) {
            Some(n) => self.nodes.insert(id, n),
            None => self.nodes.remove(&id),
        };
    }

    /// An event on the node watch; anything but events or progress (a
    /// cancel, a compaction) means reading the node prefix again.
    pub(super) fn on_node_watch(
        &mut self,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match r {
            Ok(WatchEvent::Events { events, .. }) => {
                for e in events {
                    match e.kind {
                        EventKind::Put => self.node_put(&e.kv),
                        EventKind::Delete => {
                            if let Some(id) = self.node_id(&e.kv.key) {
                                self.nodes_changed |= self.nodes.remove(&id).is_some();
                                self.on_node_gone(&id, e.kv.mod_revision, out);
                            }
                        }
                    }
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(_) => out.push(Action::Range(
                NODES,
                Range::prefix(self.cfg.schema.cron_node_dir()),
            )),
            Err(e) => self.session.start_reconnect(&e, now, out),
        }
    }
}

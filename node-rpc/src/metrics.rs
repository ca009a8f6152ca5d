//! The node client's metrics (one set per process: [`metrics`]): calls and failed calls per
//! JSON-RPC method. A node call is a blocking HTTP round trip, so the family's label lookup
//! (a read lock) is nothing beside it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

type Labels = [(&'static str, &'static str); 1];

#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Calls made, by `method`.
    pub calls: Family<Labels, Counter>,
    /// Calls that failed (unreachable, timed out, an RPC error, a bad reply), by `method`.
    pub errors: Family<Labels, Counter>,
}

impl NodeMetrics {
    pub(crate) fn record(&self, method: &'static str, ok: bool) {
        let labels = [("method", method)];
        self.calls.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
    }

    /// Calls of `method` so far, and how many failed.
    pub fn counts(&self, method: &'static str) -> (u64, u64) {
        let labels = [("method", method)];
        let get = |f: &Family<Labels, Counter>| f.get(&labels).map_or(0, |c| c.get());
        (get(&self.calls), get(&self.errors))
    }

    /// Registers every handle under `obtc_node_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("obtc_node");
        r.register(
            "rpc_calls",
            "JSON-RPC calls to the node, by method",
            self.calls.clone(),
        );
        r.register(
            "rpc_errors",
            "Failed JSON-RPC calls to the node, by method",
            self.errors.clone(),
        );
    }
}

static METRICS: LazyLock<NodeMetrics> = LazyLock::new(NodeMetrics::default);

/// The process's node client metrics (every client in this process counts into them).
pub fn metrics() -> &'static NodeMetrics {
    &METRICS
}

// The agent's own counters and gauges, and their Prometheus text exposition
// (/metrics), apart from the Agent that updates them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace skiff::agent {

struct AgentStats {
    // Reconciles and the source.
    uint64_t reconciles_ok = 0, reconciles_failed = 0, source_errors = 0;
    double last_duration_s = 0, total_duration_s = 0;
    double last_plan_s = 0, last_apply_s = 0;  // the last reconcile's service phases
    size_t source_objects = 0, max_objects = 0;
    bool over_limit = false;  // the last snapshot was refused
    uint64_t snapshots_refused = 0, memory_trims = 0;
    size_t skipped_objects = 0, frontend_conflicts = 0, node_conflicts = 0;
    // Datapath writes.
    uint64_t map_writes = 0, map_deletes = 0, route_writes = 0, route_deletes = 0;
    uint64_t svc_writes = 0, svc_deletes = 0;
    // What the maps hold.
    size_t node_entries = 0, frontends = 0, backends = 0;
    uint64_t ct_entries = 0, ct_evicted = 0, snat_flows = 0;
    // Garbage collection.
    uint64_t ct_expired = 0, ct_stale = 0, snat_expired = 0, gc_passes = 0;
    double last_ct_gc_s = 0, last_snat_gc_s = 0, total_gc_s = 0;
};

// One row of the datapath's packet counters, named.
struct DatapathCount {
    std::string reason, direction;
    uint64_t packets = 0, bytes = 0;
};

// What the datapath's maps say at the time of the scrape; endpoints < 0:
// the map could not be read.
struct DatapathStats {
    long long endpoints = -1;
    bool counts_read = false;  // else the packet counters are left out
    std::vector<DatapathCount> counts;
};

// The exposition: HELP and TYPE lines, then the samples.
std::string render_metrics(const AgentStats& s, const DatapathStats& d);

}  // namespace skiff::agent

#include "agent_metrics.h"

#include <cstdio>
#include <initializer_list>
#include <utility>

#include "datapath/map_layout.h"

namespace skiff::agent {
namespace {

class Exposition {
public:
    void head(const char* name, const char* type, const char* help) {
        out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void sample(const std::string& name, const std::string& labels, double v) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
    }
    // A family whose samples differ by their labels only.
    void family(const char* name, const char* type, const char* help,
                std::initializer_list<std::pair<const char*, double>> samples) {
        head(name, type, help);
        for (const auto& [labels, v] : samples) sample(name, labels, v);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

template <typename T>
double d(T v) {
    return static_cast<double>(v);
}

}  // namespace

std::string render_metrics(const AgentStats& s, const DatapathStats& dp) {
    Exposition e;
    e.family("skiff_agent_reconciles_total", "counter", "Reconcile passes by result.",
             {{"result=\"ok\"", d(s.reconciles_ok)}, {"result=\"error\"", d(s.reconciles_failed)}});
    e.head("skiff_agent_reconcile_duration_seconds", "summary", "Time spent reconciling.");
    e.sample("skiff_agent_reconcile_duration_seconds_sum", "", s.total_duration_s);
    e.sample("skiff_agent_reconcile_duration_seconds_count", "", d(s.reconciles_ok + s.reconciles_failed));
    e.family("skiff_agent_last_reconcile_duration_seconds", "gauge", "Duration of the last reconcile.",
             {{"", s.last_duration_s}});
    e.family("skiff_agent_last_services_duration_seconds", "gauge", "Last reconcile's service planning and map sync.",
             {{"phase=\"plan\"", s.last_plan_s}, {"phase=\"apply\"", s.last_apply_s}});
    e.family("skiff_agent_source_errors_total", "counter", "Polls of the source that failed.",
             {{"", d(s.source_errors)}});
    e.family("skiff_agent_skipped_objects", "gauge", "Source objects skipped as invalid in the last reconcile.",
             {{"", d(s.skipped_objects)}});
    e.family("skiff_agent_conflicts", "gauge",
             "Objects skipped in the last reconcile for claiming what another holds (a frontend, a PodCIDR).",
             {{"kind=\"frontend\"", d(s.frontend_conflicts)}, {"kind=\"podcidr\"", d(s.node_conflicts)}});
    e.family("skiff_agent_source_objects", "gauge", "Nodes, Services and EndpointSlices in the source's last snapshot.",
             {{"", d(s.source_objects)}});
    e.family("skiff_agent_max_objects", "gauge", "maxObjects: larger snapshots are not applied.",
             {{"", d(s.max_objects)}});
    e.family("skiff_agent_source_over_limit", "gauge", "1 while the source's last snapshot is over maxObjects.",
             {{"", s.over_limit ? 1.0 : 0.0}});
    e.family("skiff_agent_snapshots_refused_total", "counter", "Snapshots not applied for being over maxObjects.",
             {{"", d(s.snapshots_refused)}});
    e.family("skiff_agent_memory_trims_total", "counter", "Times freed memory was handed back after the model shrank.",
             {{"", d(s.memory_trims)}});
    e.family("skiff_agent_writes_total", "counter", "Datapath writes by target and operation.",
             {{"target=\"node_map\",op=\"upsert\"", d(s.map_writes)},
              {"target=\"node_map\",op=\"delete\"", d(s.map_deletes)},
              {"target=\"route\",op=\"upsert\"", d(s.route_writes)},
              {"target=\"route\",op=\"delete\"", d(s.route_deletes)},
              {"target=\"services\",op=\"upsert\"", d(s.svc_writes)},
              {"target=\"services\",op=\"delete\"", d(s.svc_deletes)}});
    e.family("skiff_agent_conntrack_gc_deleted_total", "counter", "Conntrack entries removed by the agent.",
             {{"reason=\"expired\"", d(s.ct_expired)}, {"reason=\"stale_backend\"", d(s.ct_stale)}});
    e.head("skiff_agent_gc_duration_seconds", "summary",
           "Busy time in GC, conntrack and masquerade together (sum); passes ended (count).");
    e.sample("skiff_agent_gc_duration_seconds_sum", "", s.total_gc_s);
    e.sample("skiff_agent_gc_duration_seconds_count", "", d(s.gc_passes));
    e.family("skiff_agent_last_gc_duration_seconds", "gauge",
             "Busy time of the last GC pass, by table (a conntrack pass runs in slices over several ticks).",
             {{"table=\"conntrack\"", s.last_ct_gc_s}, {"table=\"snat\"", s.last_snat_gc_s}});
    e.family("skiff_map_entries", "gauge", "Entries in the datapath maps.",
             {{"map=\"nodes\"", d(s.node_entries)},
              {"map=\"frontends\"", d(s.frontends)},
              {"map=\"backends\"", d(s.backends)},
              {"map=\"conntrack\"", d(s.ct_entries)},
              {"map=\"snat_flows\"", d(s.snat_flows)}});
    e.family("skiff_agent_snat_gc_deleted_total", "counter", "Masquerade flows expired by the agent.",
             {{"", d(s.snat_expired)}});
    e.family("skiff_conntrack_evictions_total", "counter",
             "Conntrack entries the full LRU map evicted since the agent started (inserted - removed - present).",
             {{"", d(s.ct_evicted)}});
    e.family("skiff_map_pressure", "gauge", "Fraction of the map in use.",
             {{"map=\"conntrack\"", d(s.ct_entries) / SKIFF_CT_MAX}});
    e.family("skiff_map_capacity", "gauge",
             "Entries the datapath maps can hold (conntrack evicts least recently used).",
             {{"map=\"conntrack\"", d(SKIFF_CT_MAX)},
              {"map=\"backends\"", d(SKIFF_BACKENDS_MAX)},
              {"map=\"services\"", d(SKIFF_SERVICES_MAX)},
              {"map=\"snat\"", d(SKIFF_SNAT_MAX)}});
    if (dp.endpoints >= 0) e.sample("skiff_map_entries", "map=\"endpoints\"", d(dp.endpoints));
    if (dp.counts_read) {
        auto labels = [](const DatapathCount& c) {
            return "reason=\"" + c.reason + "\",direction=\"" + c.direction + "\"";
        };
        e.head("skiff_datapath_packets_total", "counter", "Packets by verdict reason and direction.");
        for (const auto& c : dp.counts) e.sample("skiff_datapath_packets_total", labels(c), d(c.packets));
        e.head("skiff_datapath_bytes_total", "counter", "Bytes by verdict reason and direction.");
        for (const auto& c : dp.counts) e.sample("skiff_datapath_bytes_total", labels(c), d(c.bytes));
    }
    return e.take();
}

}  // namespace skiff::agent

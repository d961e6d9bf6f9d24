// The agent: turns source snapshots into datapath state, keeps metrics and
// health, writes the node's CNI conflist once its PodCIDR is known.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent_metrics.h"
#include "cluster.h"
#include "conflist.h"
#include "config.h"
#include "http.h"
#include "kernel_tables.h"
#include "ct_gc.h"
#include "gc_scheduler.h"
#include "node_sync.h"
#include "service_sync.h"
#include "snat_gc.h"
#include "source.h"

namespace skiff::agent {

class Agent {
public:
    Agent(AgentConfig cfg, std::unique_ptr<Source> source, std::unique_ptr<NodeTable> nodes,
          std::unique_ptr<RouteTable> routes);

    // Also program services and collect conntrack garbage.
    void enable_services(std::unique_ptr<ServiceTables> tables, std::unique_ptr<CtTable> ct);
    // Also keep the no-masquerade set and collect NAT garbage.
    void enable_masquerade(std::unique_ptr<SnatTable> snat);
    // Also read the datapath's counters (/metrics, the GC's eviction count).
    void read_datapath(std::unique_ptr<DatapathReader> reader) { reader_ = std::move(reader); }
    // Which nodes are reached through the tunnel (default: none).
    void set_routing(Routing routing) { routing_ = std::move(routing); }

    // One pass: poll the source; reconcile when it changed or a resync is
    // due. Errors leave the programmed state untouched.
    void tick();

    HttpResponse handle_http(const std::string& path);
    std::string metrics_text();
    // This node's PodCIDR once a reconcile programmed it.
    std::optional<Ipv4Prefix> local_pod_cidr() const;

private:
    // The source is read, the state is programmed and nothing is refused
    // (/healthz; /readyz also wants this node's PodCIDR). Under mu_.
    bool healthy_locked() const;
    void reconcile(const ClusterSpec& spec);
    // A snapshot from the source: taken, or refused when over maxObjects.
    // Returns whether it was taken.
    bool take(ClusterSpec&& snap);
    // Hands freed heap back to the kernel once the objects held shrank a lot.
    void release_memory(size_t objects);

    AgentConfig cfg_;
    std::unique_ptr<Source> source_;
    std::unique_ptr<NodeTable> nodes_;
    std::unique_ptr<RouteTable> routes_;
    Routing routing_;
    std::unique_ptr<ServiceTables> svc_tables_;
    std::unique_ptr<ServiceSync> svc_sync_;
    ServicePlanner planner_;
    std::unique_ptr<CtTable> ct_;
    std::unique_ptr<SnatTable> snat_;
    std::unique_ptr<DatapathReader> reader_;
    std::optional<GcScheduler> gc_;  // made at the first tick with both tables
    void gc();
    std::optional<ClusterSpec> last_good_;
    size_t held_objects_ = 0;  // the most objects held since memory was last given back
    bool trim_due_ = false;    // give it back after the next reconcile
    std::chrono::steady_clock::time_point last_sync_{};
    bool retry_ = false;
    std::chrono::steady_clock::time_point last_full_load_ =
        std::chrono::steady_clock::now();  // the last reconcile failed: try again next tick

    mutable std::mutex mu_;  // guards everything below (read by the HTTP thread)
    std::string source_error_;
    std::string sync_error_;
    std::string limit_error_;  // the last snapshot was refused: over maxObjects
    std::vector<std::string> problems_;
    std::optional<Ipv4Prefix> local_cidr_;
    AgentStats stats_;
};

}  // namespace skiff::agent

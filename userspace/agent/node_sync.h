// Reconciling the node map and the kernel routes for remote PodCIDRs with
// a Plan. Reconcile, never flush: read what is there, write the difference.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "cluster.h"
#include "common/result.h"
#include "bpf/map_layout.h"

namespace skiff::agent {

// The pieces of the node the agent programs, behind interfaces so the
// reconcile logic is unit-testable.
class NodeTable {
public:
    virtual ~NodeTable() = default;
    virtual Result<std::map<Ipv4Prefix, skiff_node_info>> list() = 0;
    virtual Status upsert(const Ipv4Prefix& cidr, const skiff_node_info& info) = 0;
    virtual Status remove(const Ipv4Prefix& cidr) = 0;
};

class RouteTable {
public:
    virtual ~RouteTable() = default;
    // Routes this agent owns (tagged with its protocol): PodCIDR -> via.
    virtual Result<std::map<Ipv4Prefix, Ipv4>> list() = 0;
    virtual Status replace(const Ipv4Prefix& cidr, Ipv4 via) = 0;
    virtual Status remove(const Ipv4Prefix& cidr) = 0;
};

struct SyncResult {
    unsigned map_writes = 0, map_deletes = 0;
    unsigned route_writes = 0, route_deletes = 0;
    size_t nodes = 0;  // entries in the node map afterwards
};

Result<SyncResult> sync_nodes(const Plan& plan, NodeTable& nodes, RouteTable& routes);

std::unique_ptr<NodeTable> make_bpf_node_table(const std::string& pin_dir);
std::unique_ptr<RouteTable> make_kernel_route_table(int uplink_ifindex);

}  // namespace skiff::agent

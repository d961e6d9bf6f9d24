// Reconciling the node map and the kernel routes for remote PodCIDRs with
// a Plan. Reconcile, never flush: read what is there, write the difference.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster.h"
#include "common/result.h"
#include "config.h"
#include "datapath/map_layout.h"

namespace skiff::agent {

// The pieces of the node the agent programs, behind interfaces so the
// reconcile logic is unit-testable: tables keyed by prefix that the agent
// owns whole, the node map (PodCIDR -> node) and its routes (PodCIDR ->
// via; only those tagged with its protocol).
template <class V>
class PrefixTable {
public:
    virtual ~PrefixTable() = default;
    virtual Result<std::map<Ipv4Prefix, V>> list() = 0;
    virtual Status put(const Ipv4Prefix& cidr, const V& value) = 0;  // add or replace
    virtual Status remove(const Ipv4Prefix& cidr) = 0;
};

using NodeTable = PrefixTable<skiff_node_info>;

// How the node's own traffic reaches a remote PodCIDR: via the owning
// node's address on the uplink (native), or into the tunnel device.
struct RouteVia {
    Ipv4 gateway;         // native: the node's address
    bool tunnel = false;  // overlay: no gateway, the tunnel device
    RouteVia() = default;
    RouteVia(Ipv4 gw) : gateway(gw) {}  // NOLINT: a gateway is a native route
    static RouteVia through_tunnel() {
        RouteVia v;
        v.tunnel = true;
        return v;
    }
    bool operator==(const RouteVia&) const = default;
};

// Which nodes are reached through the tunnel: none (native), all (vxlan),
// or those outside the uplink's own subnets (vxlan-cross-subnet).
struct Routing {
    RoutingMode mode = RoutingMode::Native;
    std::vector<Ipv4Prefix> uplink_subnets;
    bool encap_to(Ipv4 node_ip) const;
};

using RouteTable = PrefixTable<RouteVia>;

struct SyncResult {
    unsigned map_writes = 0, map_deletes = 0;
    unsigned route_writes = 0, route_deletes = 0;
    size_t nodes = 0;  // entries in the node map afterwards
};

Result<SyncResult> sync_nodes(const Plan& plan, NodeTable& nodes, RouteTable& routes, const Routing& routing = {});

}  // namespace skiff::agent

#include "node_sync.h"

#include <linux/rtnetlink.h>

#include <functional>

#include "datapath/maps.h"
#include "net/rtnetlink.h"

namespace skiff::agent {

bool Routing::encap_to(Ipv4 node_ip) const {
    switch (mode) {
        case RoutingMode::Native: return false;
        case RoutingMode::Vxlan: return true;
        case RoutingMode::VxlanCrossSubnet:
            for (const auto& s : uplink_subnets)
                if (s.contains(node_ip)) return false;
            return true;
    }
    return false;
}

namespace {

// Brings a table to want: writes what is missing or differs (by same),
// then removes what is not wanted.
template <class V, class Same>
Status reconcile(PrefixTable<V>& table, const std::map<Ipv4Prefix, V>& want, Same same, unsigned& writes,
                 unsigned& deletes) {
    SKIFF_ASSIGN_OR_RETURN(auto have, table.list());
    for (const auto& [cidr, value] : want) {
        auto it = have.find(cidr);
        if (it != have.end() && same(it->second, value)) continue;
        SKIFF_TRY(table.put(cidr, value));
        ++writes;
    }
    for (const auto& [cidr, value] : have) {
        if (want.count(cidr)) continue;
        SKIFF_TRY(table.remove(cidr));
        ++deletes;
    }
    return ok();
}

}  // namespace

Result<SyncResult> sync_nodes(const Plan& plan, NodeTable& nodes, RouteTable& routes, const Routing& routing) {
    SyncResult r;
    std::map<Ipv4Prefix, skiff_node_info> want_map;
    std::map<Ipv4Prefix, RouteVia> want_routes;
    for (const auto& nr : plan.routes) {
        skiff_node_info info{};
        info.node_ip = nr.node_ip.be();
        bool encap = !nr.local && routing.encap_to(nr.node_ip);
        info.flags = (nr.local ? SKIFF_NODE_F_LOCAL : 0) | (encap ? SKIFF_NODE_F_ENCAP : 0);
        want_map[nr.pod_cidr] = info;
        if (!nr.local) want_routes[nr.pod_cidr] = encap ? RouteVia::through_tunnel() : RouteVia(nr.node_ip);
        // Pods reach an encapsulated node's own address through the tunnel
        // too: the underlay never sees a pod's source address.
        if (encap) {
            skiff_node_info host{};
            host.node_ip = info.node_ip;
            host.flags = SKIFF_NODE_F_ENCAP | SKIFF_NODE_F_HOST;
            want_map.emplace(Ipv4Prefix(nr.node_ip, 32), host);
        }
    }

    auto same_node = [](const skiff_node_info& a, const skiff_node_info& b) {
        return a.node_ip == b.node_ip && a.flags == b.flags;
    };
    SKIFF_TRY(reconcile(nodes, want_map, same_node, r.map_writes, r.map_deletes));
    SKIFF_TRY(reconcile(routes, want_routes, std::equal_to<>{}, r.route_writes, r.route_deletes));
    r.nodes = want_map.size();
    return r;
}

}  // namespace skiff::agent

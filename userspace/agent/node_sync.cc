#include "node_sync.h"

#include <linux/rtnetlink.h>

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

    SKIFF_ASSIGN_OR_RETURN(auto have_map, nodes.list());
    for (const auto& [cidr, info] : want_map) {
        auto it = have_map.find(cidr);
        if (it != have_map.end() && it->second.node_ip == info.node_ip && it->second.flags == info.flags) continue;
        SKIFF_TRY(nodes.upsert(cidr, info));
        ++r.map_writes;
    }
    for (const auto& [cidr, info] : have_map) {
        if (want_map.count(cidr)) continue;
        SKIFF_TRY(nodes.remove(cidr));
        ++r.map_deletes;
    }

    SKIFF_ASSIGN_OR_RETURN(auto have_routes, routes.list());
    for (const auto& [cidr, via] : want_routes) {
        auto it = have_routes.find(cidr);
        if (it != have_routes.end() && it->second == via) continue;
        SKIFF_TRY(routes.replace(cidr, via));
        ++r.route_writes;
    }
    for (const auto& [cidr, via] : have_routes) {
        if (want_routes.count(cidr)) continue;
        SKIFF_TRY(routes.remove(cidr));
        ++r.route_deletes;
    }
    r.nodes = want_map.size();
    return r;
}

}  // namespace skiff::agent

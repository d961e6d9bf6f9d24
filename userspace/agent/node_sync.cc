#include "node_sync.h"

#include <linux/rtnetlink.h>

#include "bpf/maps.h"
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

namespace {

class BpfNodeTable final : public NodeTable {
public:
    explicit BpfNodeTable(std::string pin) : pin_(std::move(pin)) {}

    Result<std::map<Ipv4Prefix, skiff_node_info>> list() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto entries, map_->list());
        return std::map<Ipv4Prefix, skiff_node_info>(entries.begin(), entries.end());
    }
    Status upsert(const Ipv4Prefix& cidr, const skiff_node_info& info) override {
        SKIFF_TRY(open());
        return map_->upsert(cidr, info);
    }
    Status remove(const Ipv4Prefix& cidr) override {
        SKIFF_TRY(open());
        return map_->remove(cidr);
    }

private:
    Status open() {
        if (map_) return ok();
        SKIFF_ASSIGN_OR_RETURN(auto m, bpf::NodeMap::open(pin_));
        map_.emplace(std::move(m));
        return ok();
    }
    std::string pin_;
    std::optional<bpf::NodeMap> map_;
};

class KernelRouteTable final : public RouteTable {
public:
    KernelRouteTable(int uplink, int tunnel) : uplink_(uplink), tunnel_(tunnel) {}

    Result<std::map<Ipv4Prefix, RouteVia>> list() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto all, nl_->routes());
        std::map<Ipv4Prefix, RouteVia> out;
        for (const auto& r : all) {
            if (r.protocol != kSkiffRouteProto) continue;
            if (r.gateway) out[r.dst] = RouteVia(*r.gateway);
            else if (tunnel_ && r.ifindex == tunnel_) out[r.dst] = RouteVia::through_tunnel();
        }
        return out;
    }
    Status replace(const Ipv4Prefix& cidr, const RouteVia& via) override {
        SKIFF_TRY(open());
        if (via.tunnel) {
            if (!tunnel_) return Error::invalid("route " + cidr.str() + " through a tunnel, but there is none");
            return nl_->replace_route(cidr, tunnel_, std::nullopt, RT_SCOPE_LINK, kSkiffRouteProto);
        }
        return nl_->replace_route(cidr, uplink_, via.gateway, RT_SCOPE_UNIVERSE, kSkiffRouteProto);
    }
    Status remove(const Ipv4Prefix& cidr) override {
        SKIFF_TRY(open());
        auto s = nl_->delete_route(cidr, 0, kSkiffRouteProto);
        if (!s && s.error().code == ESRCH) return ok();
        return s;
    }

private:
    Status open() {
        if (nl_) return ok();
        SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
        nl_.emplace(std::move(nl));
        return ok();
    }
    int uplink_, tunnel_;
    std::optional<Netlink> nl_;
};

}  // namespace

std::unique_ptr<NodeTable> make_bpf_node_table(const std::string& pin_dir) {
    return std::make_unique<BpfNodeTable>(pin_dir);
}

std::unique_ptr<RouteTable> make_kernel_route_table(int uplink_ifindex, int tunnel_ifindex) {
    return std::make_unique<KernelRouteTable>(uplink_ifindex, tunnel_ifindex);
}

}  // namespace skiff::agent

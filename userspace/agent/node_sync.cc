#include "node_sync.h"

#include <linux/rtnetlink.h>

#include "bpf/maps.h"
#include "net/rtnetlink.h"

namespace skiff::agent {

Result<SyncResult> sync_nodes(const Plan& plan, NodeTable& nodes, RouteTable& routes) {
    SyncResult r;
    std::map<Ipv4Prefix, skiff_node_info> want_map;
    std::map<Ipv4Prefix, Ipv4> want_routes;
    for (const auto& nr : plan.routes) {
        skiff_node_info info{};
        info.node_ip = nr.node_ip.be();
        info.flags = nr.local ? SKIFF_NODE_F_LOCAL : 0;
        want_map[nr.pod_cidr] = info;
        if (!nr.local) want_routes[nr.pod_cidr] = nr.node_ip;
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
    explicit KernelRouteTable(int uplink) : uplink_(uplink) {}

    Result<std::map<Ipv4Prefix, Ipv4>> list() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto all, nl_->routes());
        std::map<Ipv4Prefix, Ipv4> out;
        for (const auto& r : all)
            if (r.protocol == kSkiffRouteProto && r.gateway) out[r.dst] = *r.gateway;
        return out;
    }
    Status replace(const Ipv4Prefix& cidr, Ipv4 via) override {
        SKIFF_TRY(open());
        return nl_->replace_route(cidr, uplink_, via, RT_SCOPE_UNIVERSE, kSkiffRouteProto);
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
    int uplink_;
    std::optional<Netlink> nl_;
};

}  // namespace

std::unique_ptr<NodeTable> make_bpf_node_table(const std::string& pin_dir) {
    return std::make_unique<BpfNodeTable>(pin_dir);
}

std::unique_ptr<RouteTable> make_kernel_route_table(int uplink_ifindex) {
    return std::make_unique<KernelRouteTable>(uplink_ifindex);
}

}  // namespace skiff::agent

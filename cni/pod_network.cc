#include "pod_network.h"

#include <linux/if.h>
#include <linux/rtnetlink.h>

#include "common/hash.h"
#include "net/rtnetlink.h"

namespace skiff::cni {

std::string host_veth_name(const std::string& network, const std::string& cid, const std::string& ifname) {
    return "skf" + hex_digits(fnv1a64(network + "/" + cid + "/" + ifname), 12);
}

std::string host_veth_alias_prefix(const std::string& network) { return "skiff:" + network + "/"; }

std::string host_veth_alias(const std::string& network, const std::string& cid, const std::string& ifname) {
    return host_veth_alias_prefix(network) + cid + "/" + ifname;
}

namespace {

const Ipv4Prefix kDefault(Ipv4(0), 0);

class NetlinkPodNetwork final : public PodNetwork {
public:
    Result<bool> ifname_exists(const NetNs& ns, const std::string& ifname) override {
        SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open_in(ns));
        auto l = nl.link(ifname);
        if (l) return true;
        if (l.error().code == ENODEV) return false;
        return l.error();
    }

    Result<PodLinks> setup(const NetNs& ns, const PodSpec& spec) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        SKIFF_ASSIGN_OR_RETURN(auto pod, Netlink::open_in(ns));
        // A stale host end from an interrupted ADD would block the name.
        (void)host.delete_link(spec.host_veth);
        SKIFF_TRY(host.create_veth({spec.host_veth, spec.host_alias, spec.ifname, ns.fd(), spec.mtu}));
        auto r = configure(host, pod, spec);
        if (!r) (void)host.delete_link(spec.host_veth);
        return r;
    }

    Status teardown(const std::string& host_veth) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        auto s = host.delete_link(host_veth);
        if (!s && s.error().code != ENODEV) return s;
        return ok();
    }

    Status set_down(int host_ifindex) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        return host.set_down(host_ifindex);
    }

    Status teardown(int host_ifindex) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        auto s = host.delete_link(host_ifindex);
        if (!s && s.error().code != ENODEV) return s;
        return ok();
    }

    Result<bool> link_exists(int ifindex) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        auto l = host.link(ifindex);
        if (l) return true;
        if (l.error().code == ENODEV) return false;
        return l.error();
    }

    Result<PodLinks> host_side(const std::string& host_veth) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        SKIFF_ASSIGN_OR_RETURN(auto l, host.link(host_veth));
        PodLinks pl;
        pl.host_ifindex = l.ifindex;
        pl.host_mac = l.mac;
        pl.host_up = (l.flags & IFF_UP) != 0;
        return pl;
    }

    Status verify(const NetNs& ns, const PodSpec& spec) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        SKIFF_ASSIGN_OR_RETURN(auto pod, Netlink::open_in(ns));
        SKIFF_ASSIGN_OR_RETURN(auto hl, host.link(spec.host_veth));
        if (!(hl.flags & IFF_UP)) return Error::invalid("host veth " + spec.host_veth + " is down");
        SKIFF_ASSIGN_OR_RETURN(auto pl, pod.link(spec.ifname));
        if (!(pl.flags & IFF_UP)) return Error::invalid("pod interface " + spec.ifname + " is down");
        SKIFF_ASSIGN_OR_RETURN(auto addrs, pod.addresses(pl.ifindex));
        bool has_ip = false;
        for (const auto& a : addrs) has_ip |= (a.addr() == spec.ip && a.len() == 32);
        if (!has_ip) return Error::invalid("pod interface " + spec.ifname + " lacks " + spec.ip.str() + "/32");
        SKIFF_ASSIGN_OR_RETURN(auto proutes, pod.routes());
        bool has_default = false;
        for (const auto& r : proutes)
            has_default |= (r.dst == kDefault && r.gateway == kPodGateway && r.ifindex == pl.ifindex);
        if (!has_default) return Error::invalid("pod has no default route via " + kPodGateway.str());
        SKIFF_ASSIGN_OR_RETURN(auto hroutes, host.routes());
        bool has_host_route = false;
        for (const auto& r : hroutes) has_host_route |= (r.dst == Ipv4Prefix(spec.ip, 32) && r.ifindex == hl.ifindex);
        if (!has_host_route) return Error::invalid("node has no route to " + spec.ip.str() + " via " + spec.host_veth);
        return ok();
    }

    Result<std::vector<std::pair<std::string, std::string>>> host_veths(const std::string& prefix) override {
        SKIFF_ASSIGN_OR_RETURN(auto host, Netlink::open());
        SKIFF_ASSIGN_OR_RETURN(auto links, host.links());
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& l : links)
            if (l.alias.rfind(prefix, 0) == 0) out.emplace_back(l.name, l.alias);
        return out;
    }

private:
    static Result<PodLinks> configure(Netlink& host, Netlink& pod, const PodSpec& spec) {
        SKIFF_ASSIGN_OR_RETURN(auto hl, host.link(spec.host_veth));
        SKIFF_ASSIGN_OR_RETURN(auto pl, pod.link(spec.ifname));
        // No router advertisements accepted on the host end (CVE-2020-10749).
        if (auto s = write_sysctl("net/ipv6/conf/" + spec.host_veth + "/accept_ra", "0");
            !s && s.error().code != ENOENT)
            return s.error();
        SKIFF_TRY(host.set_up(hl.ifindex));
        SKIFF_TRY(pod.set_up(pl.ifindex));
        // Pod: its /32, the link-local gateway and a static neighbour for it.
        SKIFF_TRY(pod.add_address(pl.ifindex, Ipv4Prefix(spec.ip, 32)));
        SKIFF_TRY(pod.add_route(Ipv4Prefix(kPodGateway, 32), pl.ifindex, std::nullopt, RT_SCOPE_LINK));
        SKIFF_TRY(pod.add_route(kDefault, pl.ifindex, kPodGateway, RT_SCOPE_UNIVERSE));
        SKIFF_TRY(pod.add_neighbor(pl.ifindex, kPodGateway, hl.mac));
        // Node: a /32 route to the pod and a static neighbour (no ARP).
        SKIFF_TRY(host.replace_route(Ipv4Prefix(spec.ip, 32), hl.ifindex, std::nullopt, RT_SCOPE_LINK));
        SKIFF_TRY(host.add_neighbor(hl.ifindex, spec.ip, pl.mac));
        return PodLinks{hl.ifindex, hl.mac, pl.mac};
    }
};

}  // namespace

std::unique_ptr<PodNetwork> make_netlink_pod_network() { return std::make_unique<NetlinkPodNetwork>(); }

}  // namespace skiff::cni

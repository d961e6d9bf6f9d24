#include "node_datapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstdio>

#include "datapath/map_layout.h"
#include "datapath/pins.h"
#include "datapath/socklb.h"
#include "datapath/tc.h"
#include "common/files.h"
#include "common/log.h"
#include "net/rtnetlink.h"

namespace skiff::agent {
namespace {

constexpr MacAddr kTunnelMac = SKIFF_TUNNEL_MAC;

Status attach_pair(int ifindex, datapath::Program ingress, datapath::Program egress, const std::string& pin_path) {
    for (auto [program, hook] :
         {std::pair{ingress, datapath::TcHook::Ingress}, std::pair{egress, datapath::TcHook::Egress}}) {
        SKIFF_ASSIGN_OR_RETURN(auto prog, datapath::pinned_program(program, pin_path));
        SKIFF_TRY(datapath::tc_attach(ifindex, hook, prog.get()));
    }
    return ok();
}

// The device carries IPv4 pods only: an IPv6 link-local address would have
// the kernel send router solicitations and MLD reports into it, with no
// node to go to (to_tunnel would count them as drop-no-tunnel). Without
// IPv6 in the kernel there is nothing to turn off.
void no_ipv6(Netlink& nl, int ifindex) {
    if (auto s = nl.set_no_ipv6_addr_gen(ifindex); !s.ok() && s.error().code != EAFNOSUPPORT)
        log::warn("tunnel device: " + s.error().message);
}

// The tunnel device as cfg wants it: kept when it is already a
// flow-based VXLAN device on the port, else (re)created. Returns its index.

Result<int> ensure_tunnel(Netlink& nl, const TunnelConfig& t, unsigned mtu) {
    if (auto have = nl.link(t.device); have) {
        if (have->kind != "vxlan")
            return Error{EEXIST, "tunnel device " + t.device + " exists and is a " +
                                     (have->kind.empty() ? std::string("device of another kind") : have->kind)};
        auto info = nl.vxlan(have->ifindex);
        if (info && info->collect_metadata && info->port == t.port && have->mac == kTunnelMac) {
            if (have->mtu != mtu) SKIFF_TRY(nl.set_mtu(have->ifindex, mtu));
            no_ipv6(nl, have->ifindex);
            SKIFF_TRY(nl.set_up(have->ifindex));
            return have->ifindex;
        }
        log::info("tunnel device " + t.device + " is not as configured: created again");
        SKIFF_TRY(nl.delete_link(have->ifindex));
    } else if (have.error().code != ENODEV) {
        return have.error();
    }
    SKIFF_TRY(nl.create_vxlan(VxlanSpec{t.device, t.port, mtu, kTunnelMac}));
    SKIFF_ASSIGN_OR_RETURN(auto made, nl.link(t.device));
    no_ipv6(nl, made.ifindex);
    SKIFF_TRY(nl.set_up(made.ifindex));
    return made.ifindex;
}

}  // namespace

// What fits inside the uplink after VXLAN's headers (never below IPv4's 68).
static unsigned tunnel_mtu(unsigned uplink_mtu) {
    return uplink_mtu > SKIFF_VXLAN_OVERHEAD + 68 ? uplink_mtu - SKIFF_VXLAN_OVERHEAD : 68;
}

unsigned pod_mtu(const AgentConfig& cfg, unsigned uplink_mtu) {
    if (cfg.mtu) return cfg.mtu;
    if (cfg.routing_mode == RoutingMode::Native) return uplink_mtu;
    return tunnel_mtu(uplink_mtu);
}

Status check_masquerade_ports(const MasqueradeConfig& mq, const std::string& ip_local_port_range) {
    unsigned lo = 32768, hi = 60999;
    std::sscanf(ip_local_port_range.c_str(), "%u %u", &lo, &hi);
    if (mq.enabled && mq.port_min <= hi && mq.port_max >= lo)
        return Error::invalid("masquerade.portRange " + std::to_string(mq.port_min) + "-" +
                              std::to_string(mq.port_max) + " overlaps this node's ephemeral ports " +
                              std::to_string(lo) + "-" + std::to_string(hi) + " (net.ipv4.ip_local_port_range)");
    return ok();
}

Result<NodeDatapath> setup_node_datapath(const AgentConfig& cfg) {
    NodeDatapath dp;
    SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
    auto uplink = nl.link(cfg.uplink);
    if (!uplink) return Error{uplink.error().code, "uplink " + cfg.uplink + ": " + uplink.error().message};
    dp.uplink_ifindex = uplink->ifindex;
    SKIFF_TRY(attach_pair(uplink->ifindex, datapath::Program::FromUplink, datapath::Program::ToUplink, cfg.pin_path));

    dp.routing.mode = cfg.routing_mode;
    if (auto addrs = nl.addresses(uplink->ifindex); addrs) dp.routing.uplink_subnets = *addrs;
    dp.pod_mtu = pod_mtu(cfg, uplink->mtu);
    auto tunnel = ensure_tunnel(nl, cfg.tunnel, tunnel_mtu(uplink->mtu));
    if (!tunnel) return Error{tunnel.error().code, "tunnel: " + tunnel.error().message};
    dp.tunnel_ifindex = *tunnel;
    SKIFF_TRY(attach_pair(dp.tunnel_ifindex, datapath::Program::FromTunnel, datapath::Program::ToTunnel, cfg.pin_path));

    // The datapath's view of this node.
    std::string range = "32768 60999";
    if (auto r = read_file("/proc/sys/net/ipv4/ip_local_port_range"); r) range = *r;
    SKIFF_TRY(check_masquerade_ports(cfg.masquerade, range));
    SKIFF_ASSIGN_OR_RETURN(uint64_t cookie, datapath::current_netns_cookie());
    SKIFF_ASSIGN_OR_RETURN(auto m, datapath::open_pinned_map(cfg.pin_path, SKIFF_MAP_CONFIG));
    uint32_t zero = 0;
    skiff_config c{};
    c.node_ip = cfg.node_ip.be();
    c.netns_cookie = cookie;
    c.cluster_net = cfg.cluster_cidr.network().be();
    c.cluster_mask = htonl(cfg.cluster_cidr.mask());
    c.flags = cfg.masquerade.enabled ? SKIFF_CFG_F_MASQUERADE : 0;
    c.nat_port_min = cfg.masquerade.port_min;
    c.nat_port_max = cfg.masquerade.port_max;
    c.tunnel_ifindex = static_cast<uint32_t>(dp.tunnel_ifindex);
    c.tunnel_vni = cfg.tunnel.vni;
    c.tunnel_port = htons(cfg.tunnel.port);
    if (bpf_map_update_elem(m.get(), &zero, &c, BPF_ANY) != 0) return Error::errno_("write skiff_config");
    return dp;
}

}  // namespace skiff::agent

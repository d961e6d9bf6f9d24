// Underlay for the remote-node (native routing) and uplink program tests,
// built on top of bpf_test_env.h's private netns:
//  - an "uplink" veth (skt-upl-h, peer skt-upl-p) with 192.168.1.11/24, so
//    192.168.1.0/24 is a connected network, plus permanent neighbour entries
//    for some "remote nodes" on it and a gateway route (10.50.0.0/16 via
//    192.168.1.1) for a node that is not on the uplink's subnet;
//  - two pod veths of its own: skt-rpd-h with IPv4 forwarding enabled (the
//    FIB lookup of bpf_fib_lookup() requires forwarding on the ingress
//    device skb->ifindex) and skt-rnf-h with forwarding explicitly off.
// Everything is created once per process, only after test_net() has moved
// the process into its private namespace.
#pragma once

#include <bpf/libbpf.h>
#include <linux/rtnetlink.h>

#include "bpf_test_env.h"

namespace skiff::bpftest {

// Underlay addresses (host byte order).
inline const Ipv4 kUplinkIp(0xc0a8010b);      // 192.168.1.11/24: this node
inline constexpr int kUplinkPrefixLen = 24;
inline const Ipv4 kNodeNeighIp(0xc0a8010c);   // 192.168.1.12: remote node, neighbour known
inline const Ipv4 kNodeNoNeighIp(0xc0a8010d); // 192.168.1.13: remote node, no neighbour entry
inline const Ipv4 kNodeLpm24Ip(0xc0a80115);   // 192.168.1.21: owner of the /24 (LPM test)
inline const Ipv4 kNodeLpm25Ip(0xc0a80116);   // 192.168.1.22: owner of the /25 (LPM test)
inline const Ipv4 kGatewayIp(0xc0a80101);     // 192.168.1.1: router toward 10.50.0.0/16
inline const Ipv4 kNodeViaGwIp(0x0a320007);   // 10.50.0.7: remote node behind the gateway
inline const Ipv4 kNodeNoRouteIp(0x0a630001); // 10.99.0.1: no route at all
inline const Ipv4Prefix kGatewayNet(Ipv4(0x0a320000), 16);  // 10.50.0.0/16

inline const MacAddr kNodeNeighMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0x0c};
inline const MacAddr kNodeLpm24Mac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0x15};
inline const MacAddr kNodeLpm25Mac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0x16};
inline const MacAddr kGatewayMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0x01};

struct RemoteNet {
    const TestNet* base = nullptr;  // the shared src/dst/other pod veths
    TestVeth uplink;                // .host = this node's uplink, .pod = "the wire"
    TestVeth pod;                   // a sending pod, forwarding on its host veth
    TestVeth pod_nofwd;             // a sending pod, forwarding off on its host veth
};

namespace detail {

inline Status set_ipv4_forwarding(const std::string& dev, bool on) {
    return write_sysctl("net/ipv4/conf/" + dev + "/forwarding", on ? "1" : "0");
}

inline Result<RemoteNet> setup_remote_net() {
    const auto& base = test_net();
    // Never create anything unless we are in the private namespace.
    if (!base.ok()) return base.error().wrap("no private netns");
    SKIFF_ASSIGN_OR_RETURN(auto now, current_netns_id());
    if (now.first == base->root_ns_dev && now.second == base->root_ns_ino)
        return Error::invalid("still in the root netns");

    RemoteNet rn;
    rn.base = &base.value();
    SKIFF_ASSIGN_OR_RETURN(Netlink nl, Netlink::open());
    SKIFF_ASSIGN_OR_RETURN(rn.uplink, make_veth(nl, "skt-upl-h", "skt-upl-p"));
    SKIFF_ASSIGN_OR_RETURN(rn.pod, make_veth(nl, "skt-rpd-h", "skt-rpd-p"));
    SKIFF_ASSIGN_OR_RETURN(rn.pod_nofwd, make_veth(nl, "skt-rnf-h", "skt-rnf-p"));

    SKIFF_TRY(nl.add_address(rn.uplink.host.ifindex, Ipv4Prefix(kUplinkIp, kUplinkPrefixLen)));
    SKIFF_TRY(set_ipv4_forwarding("skt-rpd-h", true));
    SKIFF_TRY(set_ipv4_forwarding("skt-rnf-h", false));

    SKIFF_TRY(nl.add_neighbor(rn.uplink.host.ifindex, kNodeNeighIp, kNodeNeighMac));
    SKIFF_TRY(nl.add_neighbor(rn.uplink.host.ifindex, kNodeLpm24Ip, kNodeLpm24Mac));
    SKIFF_TRY(nl.add_neighbor(rn.uplink.host.ifindex, kNodeLpm25Ip, kNodeLpm25Mac));
    SKIFF_TRY(nl.add_neighbor(rn.uplink.host.ifindex, kGatewayIp, kGatewayMac));
    SKIFF_TRY(nl.add_route(kGatewayNet, rn.uplink.host.ifindex, kGatewayIp, RT_SCOPE_UNIVERSE));

    // The connected route must be there, else every FIB test would be a miss.
    SKIFF_ASSIGN_OR_RETURN(auto routes, nl.routes());
    const Ipv4Prefix connected(Ipv4(kUplinkIp.value() & 0xffffff00u), kUplinkPrefixLen);
    bool found = false;
    for (const auto& r : routes) found |= r.dst == connected && r.ifindex == rn.uplink.host.ifindex;
    if (!found) return Error::invalid("no connected route " + connected.str() + " on skt-upl-h");
    return rn;
}

}  // namespace detail

// Set up on first use; callers must check ok().
inline const Result<RemoteNet>& remote_net() {
    static const Result<RemoteNet> rn = detail::setup_remote_net();
    return rn;
}

// A raw read of one skiff_metrics slot, summed over CPUs (independent of
// MetricsMap::read()'s decoding of the index).
inline Result<Count> read_metrics_slot(const std::string& pin_dir, uint32_t index) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, bpf::open_pinned_map(pin_dir, SKIFF_MAP_METRICS));
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return Error::os(-ncpu, "count possible CPUs");
    std::vector<skiff_metrics_value> vals(static_cast<size_t>(ncpu));
    if (bpf_map_lookup_elem(fd.get(), &index, vals.data()) != 0)
        return Error::errno_("read metrics slot " + std::to_string(index));
    Count c;
    for (const auto& v : vals) {
        c.packets += v.packets;
        c.bytes += v.bytes;
    }
    return c;
}

// test_run() with GSO metadata on the skb (BPF_PROG_TEST_RUN copies
// __sk_buff.gso_size/gso_segs into skb_shinfo), as for a TCP super-packet a
// pod's socket hands to its veth: the IPv4 total length covers all segments.
inline RunResult test_run_gso(int prog_fd, const Bytes& frame, int ifindex, uint32_t gso_size,
                              uint32_t gso_segs) {
    RunResult r;
    r.data.assign(frame.size() + 256, 0);
    __sk_buff ctx_in{};
    ctx_in.ifindex = static_cast<uint32_t>(ifindex);
    ctx_in.gso_size = gso_size;
    ctx_in.gso_segs = gso_segs;
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    o.data_out = r.data.data();
    o.data_size_out = static_cast<uint32_t>(r.data.size());
    o.ctx_in = &ctx_in;
    o.ctx_size_in = sizeof(ctx_in);
    o.ctx_out = &r.ctx;
    o.ctx_size_out = sizeof(r.ctx);
    o.repeat = 1;
    int ret = bpf_prog_test_run_opts(prog_fd, &o);
    if (ret != 0) {
        r.err = ret < 0 ? ret : -errno;
        r.data.clear();
        return r;
    }
    r.retval = o.retval;
    r.data.resize(o.data_size_out);
    return r;
}

// The IPv4 neighbour table of the calling thread's netns has an entry for
// ip (any state), per /proc/thread-self/net/arp.
inline Result<bool> arp_entry_exists(Ipv4 ip) {
    std::FILE* f = std::fopen("/proc/thread-self/net/arp", "re");
    if (!f) return Error::errno_("open /proc/thread-self/net/arp");
    char line[512];
    bool found = false;
    const std::string want = ip.str() + " ";
    while (std::fgets(line, sizeof(line), f))
        if (std::string(line).rfind(want, 0) == 0) found = true;
    std::fclose(f);
    return found;
}

}  // namespace skiff::bpftest

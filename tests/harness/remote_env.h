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
// the process into its private namespace. Also:
//  - a per-device IPv4 forwarding switch restored on destruction;
//  - raw reads of skiff_metrics slots, test_run with GSO metadata, the
//    kernel's ARP table;
//  - RemoteNetTest, BpfProgramTest on this underlay (rn_, uplink_,
//    run_uplink()), base of the remote, service and SNAT fixtures;
//  - the RemoteTest fixture of remote_test.cc (namespace remote).
#pragma once

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <unistd.h>

#include "bpf_test_env.h"

namespace skiff::bpftest {

// Underlay addresses (host byte order).
inline const Ipv4 kUplinkIp(0xc0a8010b);  // 192.168.1.11/24: this node
inline constexpr int kUplinkPrefixLen = 24;
inline const Ipv4 kNodeNeighIp(0xc0a8010c);                 // 192.168.1.12: remote node, neighbour known
inline const Ipv4 kNodeNoNeighIp(0xc0a8010d);               // 192.168.1.13: remote node, no neighbour entry
inline const Ipv4 kNodeLpm24Ip(0xc0a80115);                 // 192.168.1.21: owner of the /24 (LPM test)
inline const Ipv4 kNodeLpm25Ip(0xc0a80116);                 // 192.168.1.22: owner of the /25 (LPM test)
inline const Ipv4 kGatewayIp(0xc0a80101);                   // 192.168.1.1: router toward 10.50.0.0/16
inline const Ipv4 kNodeViaGwIp(0x0a320007);                 // 10.50.0.7: remote node behind the gateway
inline const Ipv4 kNodeNoRouteIp(0x0a630001);               // 10.99.0.1: no route at all
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
    SKIFF_TRY(check_private_netns(*base));

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

// ---------------------------------------------------------------------------
// IPv4 forwarding on one device of the private netns, put back afterwards
// (bpf_fib_lookup() on ingress needs it on skb->ifindex; the agent enables
// it node-wide in production).
// ---------------------------------------------------------------------------

inline std::optional<std::string> read_sysctl(const std::string& key) {
    UniqueFd fd(::open(("/proc/sys/" + key).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    char buf[64] = {};
    ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
    if (n <= 0) return std::nullopt;
    std::string s(buf, static_cast<size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

class ForwardingOn {
public:
    Status enable(const std::string& dev) {
        key_ = "net/ipv4/conf/" + dev + "/forwarding";
        auto old = read_sysctl(key_);
        if (!old) return Error::errno_("read sysctl " + key_);
        old_ = *old;
        return write_sysctl(key_, "1");
    }
    ~ForwardingOn() {
        if (old_) (void)write_sysctl(key_, *old_);
    }

private:
    std::string key_;
    std::optional<std::string> old_;
};

// A raw read of one skiff_metrics slot, summed over CPUs (independent of
// MetricsMap::read()'s decoding of the index).
inline Result<Count> read_metrics_slot(const std::string& pin_dir, uint32_t index) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, datapath::open_pinned_map(pin_dir, SKIFF_MAP_METRICS));
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
inline RunResult test_run_gso(int prog_fd, const Bytes& frame, int ifindex, uint32_t gso_size, uint32_t gso_segs) {
    __sk_buff ctx_in{};
    ctx_in.ifindex = static_cast<uint32_t>(ifindex);
    ctx_in.gso_size = gso_size;
    ctx_in.gso_segs = gso_segs;
    return test_run(prog_fd, frame, ctx_in);
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

// ---------------------------------------------------------------------------
// Fixture base for tests on the underlay
// ---------------------------------------------------------------------------

class RemoteNetTest : public BpfProgramTest {
protected:
    // Sets rn_, net_ (its base) and uplink_ (remote_net()).
    void enter_remote_net() {
        const auto& rn = remote_net();
        ASSERT_TRUE(rn.ok()) << rn.error().message;
        rn_ = &rn.value();
        net_ = rn_->base;
        uplink_ = &rn_->uplink;
    }

    RunResult run_uplink(const Bytes& f) { return test_run(from_uplink_.get(), f, uplink_->host.ifindex); }

    const RemoteNet* rn_ = nullptr;
    const TestVeth* uplink_ = nullptr;
};

// ---------------------------------------------------------------------------
// remote_test.cc: native routing between nodes
// ---------------------------------------------------------------------------

namespace remote {

// Pods on this node (PodCIDR 10.244.0.0/24).
inline const Ipv4 kPodIp(0x0af4000a);          // 10.244.0.10: sender, skt-rpd-h (forwarding on)
inline const Ipv4 kPodNoFwdIp(0x0af4000b);     // 10.244.0.11: sender, skt-rnf-h (forwarding off)
inline const Ipv4 kDstIp(0x0af40014);          // 10.244.0.20: local pod behind base dst veth
inline const Ipv4 kOtherIp(0x0af4001e);        // 10.244.0.30: local pod behind base other veth
inline const Ipv4 kNonLocalEpIp(0x0af40028);   // 10.244.0.40: endpoint entry without SKIFF_EP_F_LOCAL
inline const Ipv4 kOwnCidrFreeIp(0x0af40063);  // 10.244.0.99: in our own PodCIDR, no endpoint
inline const Ipv4Prefix kOwnCidr(Ipv4(0x0af40000), 24);

// Remote PodCIDRs and the node owning each.
inline const Ipv4Prefix kCidrNeigh(Ipv4(0x0af40100), 24);    // 10.244.1.0/24 -> 192.168.1.12
inline const Ipv4Prefix kCidrNoNeigh(Ipv4(0x0af40200), 24);  // 10.244.2.0/24 -> 192.168.1.13
inline const Ipv4Prefix kCidrNoRoute(Ipv4(0x0af40300), 24);  // 10.244.3.0/24 -> 10.99.0.1
inline const Ipv4Prefix kCidrViaGw(Ipv4(0x0af40500), 24);    // 10.244.5.0/24 -> 10.50.0.7 (via gw)
inline const Ipv4 kRemoteNeighIp(0x0af40105);                // 10.244.1.5
inline const Ipv4 kRemoteNoNeighIp(0x0af40205);              // 10.244.2.5
inline const Ipv4 kRemoteNoRouteIp(0x0af40305);              // 10.244.3.5
inline const Ipv4 kRemoteViaGwIp(0x0af40505);                // 10.244.5.5
inline const Ipv4 kNoNodeIp(0x0af40905);                     // 10.244.9.5: no node map entry

// Both programs loaded into one pin dir, as on a node: they share maps.
class RemoteTest : public RemoteNetTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_remote_net());
        ASSERT_NO_FATAL_FAILURE(load_pinned(kWithUplink | kWithNodes));

        ASSERT_NO_FATAL_FAILURE(upsert(kPodIp, endpoint(rn_->pod)));
        ASSERT_NO_FATAL_FAILURE(upsert(kPodNoFwdIp, endpoint(rn_->pod_nofwd)));
        ASSERT_NO_FATAL_FAILURE(upsert(kDstIp, endpoint(net_->dst)));
        ASSERT_NO_FATAL_FAILURE(upsert(kOtherIp, endpoint(net_->other)));
        ASSERT_NO_FATAL_FAILURE(upsert(kNonLocalEpIp, endpoint(net_->other, 0)));

        ASSERT_NO_FATAL_FAILURE(upsert_node(kOwnCidr, node(kUplinkIp, SKIFF_NODE_F_LOCAL)));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrNeigh, node(kNodeNeighIp)));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrNoNeigh, node(kNodeNoNeighIp)));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrNoRoute, node(kNodeNoRouteIp)));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrViaGw, node(kNodeViaGwIp)));
        ASSERT_NO_FATAL_FAILURE(expect_counters({}));  // fresh maps per test
    }

    // --- frames ---

    static Ipv4Spec spec(Ipv4 src, Ipv4 dst, uint8_t ttl = 64, uint8_t proto = IPPROTO_ICMP, size_t payload = 56) {
        Bytes data = pattern(payload, static_cast<uint8_t>(ttl + proto));
        Bytes l4 = proto == IPPROTO_TCP   ? tcp(src, dst, 40000, 443, 0x0a0b0c0d, 0x18 /* PSH|ACK */, data)
                   : proto == IPPROTO_UDP ? udp(src, dst, 5353, 53, data)
                                          : icmp_echo(0x4242, 7, data);
        return ipv4_spec(src, dst, proto, std::move(l4), ttl);
    }

    // As a pod sends it: pod MAC -> its host veth's MAC.
    static Bytes from_pod_frame(const TestVeth& pod, const Ipv4Spec& s) { return eth_from_pod(pod, ipv4_packet(s)); }
    Bytes pod_icmp(Ipv4 dst, uint8_t ttl = 64) const { return from_pod_frame(rn_->pod, spec(kPodIp, dst, ttl)); }

    // As another node sends it over the wire: its MAC -> our uplink's MAC.
    Bytes wire_frame(const Bytes& l3, uint16_t ethertype = kEthPIp) const {
        return eth_from_wire(*uplink_, kNodeNeighMac, l3, ethertype);
    }
    Bytes wire_icmp(Ipv4 src, Ipv4 dst, uint8_t ttl = 64) const { return wire_frame(ipv4_packet(spec(src, dst, ttl))); }

    RunResult run_pod(const Bytes& frame) { return test_run(from_pod_.get(), frame, rn_->pod.host.ifindex); }

    // --- checks ---

    // out is in after one routed hop: the given MACs, TTL - 1 with a valid
    // (fully recomputed) checksum, addresses and everything else unchanged.
    static void expect_routed(const Bytes& in, const Bytes& out, const MacAddr* src_mac, const MacAddr* dst_mac) {
        ASSERT_EQ(out.size(), in.size());
        if (dst_mac) {
            EXPECT_EQ(hex(out.data(), 6), hex(*dst_mac)) << "dst MAC";
        }
        if (src_mac) {
            EXPECT_EQ(hex(out.data() + 6, 6), hex(*src_mac)) << "src MAC";
        }
        EXPECT_EQ(hex(&out[kEthHlen + kIpSaddr], 4), hex(&in[kEthHlen + kIpSaddr], 4)) << "source IP must be preserved";
        EXPECT_EQ(hex(&out[kEthHlen + kIpDaddr], 4), hex(&in[kEthHlen + kIpDaddr], 4))
            << "destination IP must be preserved";
        expect_ipv4_hop(in, out, "payload");
    }

    // Out of the uplink toward a node whose MAC the FIB knows.
    void expect_to_node(const Bytes& in, const Bytes& out, const MacAddr& node_mac) {
        expect_routed(in, out, &uplink_->host.mac, &node_mac);
    }
    // Into a local pod: host veth MAC -> pod MAC.
    static void expect_to_pod(const Bytes& in, const Bytes& out, const TestVeth& pod) {
        expect_routed(in, out, &pod.host.mac, &pod.pod.mac);
    }
};

}  // namespace remote

}  // namespace skiff::bpftest

// skiff-prog-bench: per-packet cost of each skiff BPF program path, as the
// kernel times it in BPF_PROG_TEST_RUN (duration = average ns per run). In a
// private netns with the BPF tests' veths/underlay (tests/harness/*_env.h) and its
// own pin dir /sys/fs/bpf/skiff-progbench-<pid> (removed at exit), it loads
// from_pod, from_uplink and to_uplink, fills the maps like a node (local +
// remote PodCIDR, a ClusterIP, masquerade) and times crafted TCP packets
// (64-byte payload) on each path, plus an empty tc program (the test_run
// overhead baseline) and the veth floor's two programs (bench/floor) on the
// packets of skiff's cross-node paths. test_run repeats on the SAME skb, so a path that
// rewrites addresses or ports, clears skb->mark or creates state would take
// another path from its 2nd run: those run once per call (--repeat calls);
// routed paths (TTL 255, -1 per run) and those that leave the packet as it is
// 200 runs per call, and once per call too. Every call's verdict, one output
// frame byte for byte (and skb->mark) and the metrics counters are checked.
// This file: the node and its path table; prog_cost_run.{h,cc}: the machinery.
#include <linux/pkt_cls.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "floor/load.h"
#include "prog_cost_run.h"
#include "snat_env.h"  // remote_env.h, service_env.h, bpf_test_env.h, frames.h

namespace {

using namespace skiff;
using namespace skiff::bpftest;
using namespace skiff::progbench;

// ---------------------------------------------------------------------------
// The node: 192.168.1.11 (remote_env.h's uplink), PodCIDR 10.244.1.0/24,
// another node 192.168.1.12 (neighbour known) owning 10.244.5.0/24, a
// ClusterIP 10.96.0.10:80 -> pod B:8080, masquerade to 192.168.1.11 for
// everything outside 10.244.0.0/16 and the nodes.
// ---------------------------------------------------------------------------

const Ipv4 kNode = kUplinkIp;
const Ipv4Prefix kClusterCidr(Ipv4(0x0af40000), 16);
const Ipv4Prefix kLocalCidr(Ipv4(0x0af40100), 24);
const Ipv4Prefix kRemoteCidr(Ipv4(0x0af40500), 24);
const Ipv4 kOtherNode = kNodeNeighIp;  // 192.168.1.12
const Ipv4 kPodA(0x0af4010a);          // 10.244.1.10: the sender, skt-rpd-h (forwarding on)
const Ipv4 kPodB(0x0af40114);          // 10.244.1.20: local destination / backend, skt-dst-h
const Ipv4 kRemotePod(0x0af40505);     // 10.244.5.5: behind 192.168.1.12
const Ipv4 kVip(0x0a60000a);           // 10.96.0.10
const Ipv4 kOutside = kSnatOutside;    // 192.168.1.200, neighbour known
constexpr uint16_t kVport = 80, kBport = 8080, kHttps = 443, kIperf = 5201, kSsh = 22;
constexpr uint32_t kBackendId = 1;
constexpr uint16_t kRevNat = 7;
constexpr uint16_t kNatMin = 61000, kNatMax = 61999;

// Source ports, one flow per path: A's, then the node's own.
constexpr uint16_t kSportLocal = 40000, kSportRemote = 40001, kSportEst = 40002, kSportSyn = 40003, kSportMasq = 40004,
                   kSportFromRemote = 40005, kSportUnmarked = 40006;
constexpr uint16_t kNodeSportEst = 50000, kNodeSportNew = 50001, kNodeSportPeer = 50002;

constexpr uint8_t kRoutedTtl = 255;
// Runs per call of the paths a 2nd run on the same skb takes again: routed
// ones while TTL 255 stays > 1, and those that leave the packet as it is.
constexpr uint32_t kBatch = 200;
constexpr size_t kPayload = 64;
constexpr uint8_t kData = kTcpPsh | kTcpAck;

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

// A Linux SYN's options: MSS 1460, SACK permitted, timestamps, NOP, wscale 7.
Bytes syn_options() {
    Bytes o = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7};
    return o;
}

Bytes tcp_frame(const MacAddr& eth_dst, const MacAddr& eth_src, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport,
                uint8_t flags, uint8_t ttl) {
    const bool syn = flags & kTcpSyn;
    Bytes l4 = tcp_segment(src, dst, sport, dport, 0x11223344, flags & kTcpAck ? 0x55667788 : 0, flags,
                           syn ? syn_options() : Bytes{}, syn ? Bytes{} : pattern(kPayload, 0x5a));
    return ethernet(eth_dst, eth_src, kEthPIp, ipv4_packet(ipv4_spec(src, dst, kTcp, std::move(l4), ttl)));
}

// ServiceMaps (service_env.h) plus deleting one conntrack entry.
class BenchServiceMaps : public ServiceMaps {
public:
    Status delete_ct(const skiff_ct_key& k) { return map_del(ct_.get(), k, "ct: delete"); }
};

// What the path table needs of the node set up by run().
struct Node {
    int from_pod = -1, from_uplink = -1, to_uplink = -1, empty = -1;  // program fds
    int floor_out = -1, floor_in = -1;                                // the veth floor's, floor_in for B
    int floor_local = -1;                                             // the same-node floor's, with A and B in its map
    const TestVeth* veth_a = nullptr;
    const TestVeth* veth_b = nullptr;
    const TestVeth* uplink = nullptr;
    BenchServiceMaps* svc = nullptr;
    SnatMaps* snat = nullptr;
    uint16_t nat_port = 0;    // A's masqueraded flow to the outside leaves from node:nat_port
    uint16_t moved_port = 0;  // the node's flow from node:nat_port to the same peer left from here

    int pod_a_if() const { return veth_a->host.ifindex; }
    int pod_b_if() const { return veth_b->host.ifindex; }
    int uplink_if() const { return uplink->host.ifindex; }
    const MacAddr& uplink_mac() const { return uplink->host.mac; }

    // A sends (pod MAC -> host veth MAC), B sends, the wire sends, the
    // node's stack sends out of the uplink (to the outside host's MAC).
    Bytes from_a(Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags, uint8_t ttl = 64) const {
        return tcp_frame(veth_a->host.mac, veth_a->pod.mac, kPodA, dst, sport, dport, flags, ttl);
    }
    Bytes from_b(Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags) const {
        return tcp_frame(veth_b->host.mac, veth_b->pod.mac, kPodB, dst, sport, dport, flags, 64);
    }
    Bytes from_wire(const MacAddr& src_mac, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags,
                    uint8_t ttl = 60) const {
        return tcp_frame(uplink_mac(), src_mac, src, dst, sport, dport, flags, ttl);
    }
    Bytes out_of_uplink(const MacAddr& next_hop, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport,
                        uint8_t flags) const {
        return tcp_frame(next_hop, uplink_mac(), src, dst, sport, dport, flags, 64);
    }
    Bytes from_node(Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags) const {
        return out_of_uplink(kSnatOutsideMac, kNode, dst, sport, dport, flags);
    }
};

// What a path makes of its frame (service_env.h's rewritten()): these MACs,
// addresses and ports, the TTL lowered by ttl; kTtlPerRun: by one per run
// (routed).
constexpr int kTtlPerRun = -1;
struct Rewrite {
    MacAddr eth_dst, eth_src;
    int ttl;
    Ipv4 saddr;
    uint16_t sport;
    Ipv4 daddr;
    uint16_t dport;
};

// Into the pod behind v (v's veth MACs).
Rewrite into(const TestVeth& v, int ttl, Ipv4 saddr, uint16_t sport, Ipv4 daddr, uint16_t dport) {
    return {v.pod.mac, v.host.mac, ttl, saddr, sport, daddr, dport};
}

// The frame after `runs` runs: rewritten as out says, or (no out) as it is.
std::function<Bytes(uint32_t)> expectation(const Bytes& in, const std::optional<Rewrite>& out) {
    if (!out) return [in](uint32_t) { return in; };
    return [in, r = *out](uint32_t runs) {
        const auto ttl = static_cast<uint8_t>(r.ttl == kTtlPerRun ? runs : static_cast<uint32_t>(r.ttl));
        return rewritten(in, r.eth_dst, r.eth_src, ttl, r.saddr, r.sport, r.daddr, r.dport);
    };
}

// ---------------------------------------------------------------------------
// The paths
// ---------------------------------------------------------------------------

struct Baselines {
    std::string batched, single;  // names
};

// g. baselines: the same frame as a., the empty program.
Baselines add_baselines(const Node& n, std::vector<Path>& paths) {
    Path p;
    p.name = "baseline_empty_batch" + std::to_string(kBatch);
    p.program = "empty";
    p.description = "tc program 'return TC_ACT_OK': test_run overhead, " + std::to_string(kBatch) + " runs per call";
    p.prog_fd = n.empty;
    p.ifindex = n.pod_a_if();
    p.frame = n.from_a(kPodB, kSportLocal, kIperf, kData, kRoutedTtl);
    p.batch = kBatch;
    p.verdict = TC_ACT_OK;
    p.counts_nothing = true;
    p.expected = expectation(p.frame, std::nullopt);
    paths.push_back(p);
    p.name = "baseline_empty_batch1";
    p.description = "tc program 'return TC_ACT_OK': test_run overhead, 1 run per call";
    p.batch = 1;
    paths.push_back(std::move(p));
    return {paths[paths.size() - 2].name, paths.back().name};
}

// The paths of one program attached at ifindex, added to paths: verdict
// `verdict`, each of `reasons` counted once per run in direction dir (a path
// counting no reason counts nothing at all), the frame out as `out` says
// (none: as it is). Once per call, against the single-run baseline;
// batched(): a path a 2nd run on the same skb takes again, kBatch runs per
// call. The Path& returned is valid until the next path is added.
struct PathMaker {
    const char* program;
    int prog_fd, ifindex;
    const Baselines& base;
    std::vector<Path>& paths;
    uint32_t dir = SKIFF_DIR_EGRESS;  // of the reasons counted
    uint32_t verdict = TC_ACT_REDIRECT;

    Path& operator()(std::string name, std::string description, Bytes frame, const std::vector<uint32_t>& reasons,
                     const std::optional<Rewrite>& out) const {
        Path p;
        p.name = std::move(name);
        p.program = program;
        p.description = std::move(description);
        p.prog_fd = prog_fd;
        p.ifindex = ifindex;
        p.frame = std::move(frame);
        p.verdict = verdict;
        for (uint32_t r : reasons) p.reasons.push_back({r, dir});
        p.counts_nothing = p.reasons.empty();
        p.expected = expectation(p.frame, out);
        p.baseline = base.single;
        paths.push_back(std::move(p));
        return paths.back();
    }
    Path& batched(std::string name, std::string description, Bytes frame, const std::vector<uint32_t>& reasons,
                  const std::optional<Rewrite>& out) const {
        Path& p = (*this)(std::move(name), std::move(description), std::move(frame), reasons, out);
        p.batch = kBatch;
        p.baseline = base.batched;
        return p;
    }
};

// from_pod: a. to b., c. to e.
void add_from_pod_paths(const Node& n, const Baselines& base, std::vector<Path>& paths) {
    const TestVeth& veth_a = *n.veth_a;
    const TestVeth& veth_b = *n.veth_b;
    const PathMaker path{"from_pod", n.from_pod, n.pod_a_if(), base, paths};
    // a. same node: redirect_peer into B.
    path.batched("pod_to_pod_same_node",
                 "A -> B on this node, TCP data: anti-spoofing, conntrack reply check, cluster range, "
                 "endpoint lookup, bpf_redirect_peer",
                 n.from_a(kPodB, kSportLocal, kIperf, kData, kRoutedTtl), {SKIFF_FWD_LOCAL_POD},
                 into(veth_b, kTtlPerRun, kPodA, kSportLocal, kPodB, kIperf));
    // b. another node: node map (LPM), bpf_fib_lookup, bpf_redirect to the uplink.
    path.batched("pod_to_pod_other_node",
                 "A -> 10.244.5.5 behind 192.168.1.12, TCP data: node map, bpf_fib_lookup (neighbour "
                 "known), bpf_redirect out of the uplink",
                 n.from_a(kRemotePod, kSportRemote, kIperf, kData, kRoutedTtl), {SKIFF_FWD_REMOTE_NODE},
                 Rewrite{kNodeNeighMac, n.uplink_mac(), kTtlPerRun, kPodA, kSportRemote, kRemotePod, kIperf})
        .mark_out = SKIFF_FORWARDED_MARK;  // for to_uplink
    // c. ClusterIP, established: conntrack hit, DNAT, redirect_peer.
    path("clusterip_established",
         "A -> 10.96.0.10:80, TCP data of a replied connection: conntrack hit, DNAT to B:8080, "
         "bpf_redirect_peer",
         n.from_a(kVip, kSportEst, kVport, kData), {SKIFF_SVC_ESTABLISHED, SKIFF_FWD_LOCAL_POD},
         into(veth_b, 1, kPodA, kSportEst, kPodB, kBport));
    // c'. its replies: reverse DNAT, redirect_peer back into A.
    path("clusterip_reply",
         "B:8080 -> A, TCP data answering c.: conntrack REPLY hit, source back to 10.96.0.10:80, "
         "bpf_redirect_peer",
         n.from_b(kPodA, kBport, kSportEst, kData), {SKIFF_SVC_REPLY, SKIFF_FWD_LOCAL_POD},
         into(veth_a, 1, kVip, kVport, kPodA, kSportEst))
        .ifindex = n.pod_b_if();
    // d. ClusterIP, first packet: backend pick, two conntrack inserts. The
    // entries are deleted after every call (outside the timed region), so
    // every run creates them.
    {
        Path& p = path("clusterip_syn_new",
                       "A -> 10.96.0.10:80, SYN (20 bytes of options, no payload) of a new connection: backend "
                       "pick, FORWARD+REPLY conntrack inserts, DNAT, bpf_redirect_peer; both entries deleted after "
                       "each call, untimed",
                       n.from_a(kVip, kSportSyn, kVport, kTcpSyn), {SKIFF_SVC_NEW, SKIFF_FWD_LOCAL_POD},
                       into(veth_b, 1, kPodA, kSportSyn, kPodB, kBport));
        const skiff_ct_key fkey = ct_key(kPodA, kVip, kSportSyn, kVport, kTcp, SKIFF_CT_FORWARD);
        const skiff_ct_key rkey = ct_key(kPodB, kPodA, kBport, kSportSyn, kTcp, SKIFF_CT_REPLY);
        p.after_call = [maps = n.svc, fkey, rkey]() -> Status {
            // Both must exist: proves the run created them.
            SKIFF_TRY(maps->delete_ct(fkey));
            return maps->delete_ct(rkey);
        };
    }
    // e. masquerade, established flow.
    path("masquerade_established",
         "A -> 192.168.1.200:443, TCP data of a masqueraded flow: service misses, no-masquerade "
         "LPM miss, bpf_fib_lookup, snat EGRESS hit, source -> node:port, bpf_redirect out of the "
         "uplink",
         n.from_a(kOutside, kSportMasq, kHttps, kData), {SKIFF_SNAT_EGRESS_XLATE, SKIFF_FWD_FIB},
         Rewrite{kSnatOutsideMac, n.uplink_mac(), 1, kNode, n.nat_port, kOutside, kHttps})
        .mark_out = SKIFF_FORWARDED_MARK;
}

// from_uplink: f. (what arrives), and the replies of the node's own flows.
void add_from_uplink_paths(const Node& n, const Baselines& base, std::vector<Path>& paths) {
    const PathMaker path{"from_uplink", n.from_uplink, n.uplink_if(), base, paths, SKIFF_DIR_INGRESS};
    path("uplink_masquerade_reply",
         "192.168.1.200:443 -> node:NAT port, TCP data answering e.: snat INGRESS hit, destination "
         "-> A, bpf_redirect_peer",
         n.from_wire(kSnatOutsideMac, kOutside, kNode, kHttps, n.nat_port, kData),
         {SKIFF_SNAT_INGRESS_XLATE, SKIFF_FWD_LOCAL_POD}, into(*n.veth_a, 1, kOutside, kHttps, kPodA, kSportMasq));
    path.batched("uplink_remote_pod_to_local_pod",
                 "10.244.5.5 (from 192.168.1.12) -> B, TCP data: conntrack reply check, cluster range, "
                 "endpoint lookup, bpf_redirect_peer",
                 n.from_wire(kNodeNeighMac, kRemotePod, kPodB, kSportFromRemote, kIperf, kData, kRoutedTtl),
                 {SKIFF_FWD_LOCAL_POD}, into(*n.veth_b, kTtlPerRun, kRemotePod, kSportFromRemote, kPodB, kIperf));
    // The replies of the node's flows (to_uplink's j., k.): the stack's.
    const PathMaker to_stack{"from_uplink", n.from_uplink, n.uplink_if(), base, paths, SKIFF_DIR_INGRESS, TC_ACT_OK};
    to_stack.batched("uplink_node_flow_reply",
                     "192.168.1.200:443 -> node:50000, TCP data answering j. (a node flow): service misses, "
                     "snat INGRESS hit (the node's own entry, nothing to rewrite), to the stack",
                     n.from_wire(kSnatOutsideMac, kOutside, kNode, kHttps, kNodeSportEst, kData),
                     {SKIFF_SNAT_NODE, SKIFF_FWD_STACK}, std::nullopt);
    to_stack("uplink_node_flow_moved_reply",
             "192.168.1.200:443 -> node:moved port, TCP data answering k.: service misses, snat "
             "INGRESS hit, destination port back to the node flow's own, to the stack",
             n.from_wire(kSnatOutsideMac, kOutside, kNode, kHttps, n.moved_port, kData),
             {SKIFF_SNAT_NODE, SKIFF_FWD_STACK},
             Rewrite{n.uplink_mac(), kSnatOutsideMac, 0, kOutside, kHttps, kNode, n.nat_port});
}

// to_uplink (the uplink's egress): every packet leaving the node.
void add_to_uplink_paths(const Node& n, const Baselines& base, std::vector<Path>& paths) {
    // Every path here passes (TC_ACT_OK), most with the packet as it is.
    const PathMaker path{"to_uplink", n.to_uplink, n.uplink_if(), base, paths, SKIFF_DIR_EGRESS, TC_ACT_OK};
    // h. what skiff redirected here. The first run clears the mark: once
    // per call. A's masqueraded packet (e.): on a tuple the node's table
    // holds, so it would be the node's own without the mark.
    path("to_uplink_forwarded",
         "node:NAT port -> 192.168.1.200:443, TCP data as from_pod masqueraded and redirected it "
         "(e.), skb->mark SKIFF_FORWARDED_MARK: mark cleared, passed uncounted (what every pod -> "
         "other node / outside packet pays)",
         n.from_node(kOutside, n.nat_port, kHttps, kData), {}, std::nullopt)
        .mark = SKIFF_FORWARDED_MARK;
    // i. what is not the node's to masquerade.
    path.batched("to_uplink_node_exempt",
                 "node:50002 -> 192.168.1.12:22, TCP data (to another node): config, L4 ports, "
                 "no-masquerade LPM hit, passed uncounted",
                 n.out_of_uplink(kNodeNeighMac, kNode, kOtherNode, kNodeSportPeer, kSsh, kData), {}, std::nullopt);
    path.batched("to_uplink_not_node_source",
                 "10.244.1.10 -> 192.168.1.200:443 unmarked (routed by the stack), TCP data: source is not "
                 "the node's, passed uncounted",
                 n.out_of_uplink(kSnatOutsideMac, kPodA, kOutside, kSportUnmarked, kHttps, kData), {}, std::nullopt);
    // j. the node's own tracked flow: table hit and touch.
    path.batched("to_uplink_node_flow",
                 "node:50000 -> 192.168.1.200:443, TCP data of a tracked node flow: no-masquerade LPM miss, "
                 "snat EGRESS hit (own port kept), sent as is",
                 n.from_node(kOutside, kNodeSportEst, kHttps, kData), {SKIFF_SNAT_NODE}, std::nullopt);
    // j'. its first packet. Both entries are deleted after every call
    // (outside the timed region), so every run creates them.
    {
        Path& p = path("to_uplink_node_flow_new",
                       "node:50001 -> 192.168.1.200:443, SYN of a new node flow: snat EGRESS miss, reply tuple "
                       "claimed (BPF_NOEXIST), EGRESS entry inserted, sent as is; both entries deleted after each "
                       "call, untimed",
                       n.from_node(kOutside, kNodeSportNew, kHttps, kTcpSyn), {SKIFF_SNAT_NODE_NEW}, std::nullopt);
        const skiff_ct_key ekey = snat::egress_key(kNode, kOutside, kNodeSportNew, kHttps, kTcp);
        const skiff_ct_key ikey = snat::ingress_key(kOutside, kHttps, kNodeSportNew, kTcp);
        p.after_call = [maps = n.snat, ekey, ikey]() -> Status {
            // Both must exist: proves the run created them.
            SKIFF_TRY(maps->del(ekey));
            return maps->del(ikey);
        };
    }
    // k. a node flow moved off the tuple A's masqueraded flow (e.) holds:
    // its later packets, source port rewritten.
    path("to_uplink_node_flow_moved",
         "node:NAT port of e. -> 192.168.1.200:443, TCP data of a node flow moved off A's tuple: "
         "snat EGRESS hit, source port -> the moved port, sent",
         n.from_node(kOutside, n.nat_port, kHttps, kData), {SKIFF_SNAT_NODE},
         Rewrite{kSnatOutsideMac, n.uplink_mac(), 0, kNode, n.moved_port, kOutside, kHttps});
}

// l. The veth floor (bench/floor/veth_floor.c) on b.'s and the uplink
// remote -> local path's packets: the least a veth datapath does there;
// the same-node floor (veth_floor_local.c) on a.'s. No reasons: they count
// nothing.
void add_floor_paths(const Node& n, const Baselines& base, std::vector<Path>& paths) {
    PathMaker{"floor_local", n.floor_local, n.pod_a_if(), base, paths}.batched(
        "floor_pod_to_pod_same_node",
        "a.'s packet through the same-node veth floor's floor_local: one hash lookup of the destination, "
        "MACs, bpf_redirect_peer into B; no TTL, checks or counters",
        n.from_a(kPodB, kSportLocal, kIperf, kData, kRoutedTtl), {},
        into(*n.veth_b, 0, kPodA, kSportLocal, kPodB, kIperf));
    PathMaker{"floor_out", n.floor_out, n.pod_a_if(), base, paths}.batched(
        "floor_pod_to_pod_other_node",
        "b.'s packet through the veth floor's floor_out: bpf_fib_lookup of 10.244.5.5 (kernel route via "
        "192.168.1.12, neighbour known), MACs, bpf_redirect out of the uplink; no TTL, checks or counters",
        n.from_a(kRemotePod, kSportRemote, kIperf, kData, kRoutedTtl), {},
        Rewrite{kNodeNeighMac, n.uplink_mac(), 0, kPodA, kSportRemote, kRemotePod, kIperf});
    PathMaker{"floor_in", n.floor_in, n.uplink_if(), base, paths}.batched(
        "floor_uplink_remote_pod_to_local_pod",
        "uplink_remote_pod_to_local_pod's packet through the veth floor's floor_in: destination check, "
        "MACs, bpf_redirect_peer into B; no TTL, checks or counters",
        n.from_wire(kNodeNeighMac, kRemotePod, kPodB, kSportFromRemote, kIperf, kData, kRoutedTtl), {},
        into(*n.veth_b, 0, kRemotePod, kSportFromRemote, kPodB, kIperf));
}

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

Status run(const Options& opt, const std::string& pin_dir, nlohmann::ordered_json& result) {
    // The private netns and its devices (bpf_test_env.h, remote_env.h,
    // snat_env.h): nothing is created unless the unshare worked.
    const auto& net = test_net();
    if (!net.ok()) return net.error().wrap("private netns");
    SKIFF_TRY(detail::check_private_netns(*net));
    const auto& rn_r = remote_net();
    if (!rn_r.ok()) return rn_r.error().wrap("underlay");
    SKIFF_TRY(snat_net());
    const RemoteNet& rn = *rn_r;

    // Programs and maps, as on a node: one pin dir shared by the programs.
    SKIFF_ASSIGN_OR_RETURN(UniqueFd from_pod, datapath::pinned_program(datapath::Program::FromPod, pin_dir));
    SKIFF_ASSIGN_OR_RETURN(UniqueFd from_uplink, datapath::pinned_program(datapath::Program::FromUplink, pin_dir));
    SKIFF_ASSIGN_OR_RETURN(UniqueFd to_uplink, datapath::pinned_program(datapath::Program::ToUplink, pin_dir));
    SKIFF_ASSIGN_OR_RETURN(UniqueFd empty, load_empty_prog());
    SKIFF_ASSIGN_OR_RETURN(floor::FloorProgs floor,
                           floor::load_floor(kPodB, net->dst.host.ifindex, net->dst.pod.mac, net->dst.host.mac));
    SKIFF_ASSIGN_OR_RETURN(
        UniqueFd floor_local,
        floor::load_floor_local({{kPodA, rn.pod.host.ifindex, rn.pod.pod.mac, rn.pod.host.mac},
                                 {kPodB, net->dst.host.ifindex, net->dst.pod.mac, net->dst.host.mac}}));
    {
        // floor_out routes by the kernel's FIB: the route skiff's agent
        // installs for the remote node's PodCIDR.
        SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
        SKIFF_TRY(nl.add_route(kRemoteCidr, rn.uplink.host.ifindex, kOtherNode, RT_SCOPE_UNIVERSE));
    }
    SKIFF_ASSIGN_OR_RETURN(auto endpoints, datapath::EndpointMap::open(pin_dir));
    SKIFF_ASSIGN_OR_RETURN(auto nodes, datapath::NodeMap::open(pin_dir));
    SKIFF_ASSIGN_OR_RETURN(auto metrics, datapath::MetricsMap::open(pin_dir));
    BenchServiceMaps svc;
    SKIFF_TRY(svc.open(pin_dir));
    SnatMaps snat_maps;
    SKIFF_TRY(snat_maps.open(pin_dir));

    Node n;
    n.from_pod = from_pod.get();
    n.from_uplink = from_uplink.get();
    n.to_uplink = to_uplink.get();
    n.empty = empty.get();
    n.floor_out = floor.out.get();
    n.floor_in = floor.in.get();
    n.floor_local = floor_local.get();
    n.veth_a = &rn.pod;  // forwarding on: FIB lookups from A work
    n.veth_b = &net->dst;
    n.uplink = &rn.uplink;
    n.svc = &svc;
    n.snat = &snat_maps;

    SKIFF_TRY(endpoints.upsert(kPodA, endpoint(*n.veth_a)));
    SKIFF_TRY(endpoints.upsert(kPodB, endpoint(*n.veth_b)));
    SKIFF_TRY(nodes.upsert(kLocalCidr, node(kNode, SKIFF_NODE_F_LOCAL)));
    SKIFF_TRY(nodes.upsert(kRemoteCidr, node(kOtherNode)));
    SKIFF_TRY(svc.set_backend(kBackendId, kPodB, kBport, kTcp));
    SKIFF_TRY(svc.set_service(kVip, kVport, kTcp, {kBackendId}, kRevNat));
    SKIFF_TRY(snat_maps.add_nomasq(kClusterCidr));
    SKIFF_TRY(snat_maps.add_nomasq(Ipv4Prefix(kNode, 32)));
    SKIFF_TRY(snat_maps.add_nomasq(Ipv4Prefix(kOtherNode, 32)));
    SKIFF_TRY(snat_maps.set_config(snat::config(SKIFF_CFG_F_MASQUERADE, kNatMin, kNatMax)));

    auto one_run = [&](int fd, const Bytes& f, int ifindex, uint32_t want, Bytes* out,
                       const std::string& what) -> Status {
        Call c = test_run_repeat(fd, f, ifindex, 1, out);
        if (c.err) return Error::os(-c.err, what);
        if (c.retval != want)
            return Error::invalid(what + ": " + verdict_name(c.retval) + ", expected " + verdict_name(want) +
                                  "; counters: " + describe_counters(metrics));
        return ok();
    };

    // State the measured packets need: an established ClusterIP connection
    // (SYN, SYN-ACK through the reverse path), a masqueraded flow, a node
    // flow, and a node flow moved off the masqueraded flow's tuple.
    SKIFF_TRY(one_run(n.from_pod, n.from_a(kVip, kSportEst, kVport, kTcpSyn), n.pod_a_if(), TC_ACT_REDIRECT, nullptr,
                      "set-up: SYN to the ClusterIP"));
    SKIFF_TRY(one_run(n.from_pod, n.from_b(kPodA, kBport, kSportEst, kTcpSyn | kTcpAck), n.pod_b_if(), TC_ACT_REDIRECT,
                      nullptr, "set-up: SYN-ACK from the backend"));
    {
        auto fwd = svc.ct(ct_key(kPodA, kVip, kSportEst, kVport, kTcp, SKIFF_CT_FORWARD));
        if (!fwd || !(fwd->flags & SKIFF_CT_F_REPLIED))
            return Error::invalid("set-up: no replied conntrack entry: " + svc.ct_dump());
    }
    Bytes masq_out;
    SKIFF_TRY(one_run(n.from_pod, n.from_a(kOutside, kSportMasq, kHttps, kTcpSyn), n.pod_a_if(), TC_ACT_REDIRECT,
                      &masq_out, "set-up: SYN to the outside"));
    if (masq_out.size() < kEthHlen + 40 || frame_saddr(masq_out) != kNode)
        return Error::invalid("set-up: the SYN to the outside was not masqueraded: " + hex(masq_out));
    n.nat_port = frame_sport(masq_out);

    const Bytes node_syn = n.from_node(kOutside, kNodeSportEst, kHttps, kTcpSyn);
    Bytes node_out;
    SKIFF_TRY(one_run(n.to_uplink, node_syn, n.uplink_if(), TC_ACT_OK, &node_out, "set-up: the node's SYN"));
    auto node_entry = snat_maps.get(snat::egress_key(kNode, kOutside, kNodeSportEst, kHttps, kTcp));
    if (node_out != node_syn || !node_entry || ntohs(node_entry->port) != kNodeSportEst)
        return Error::invalid("set-up: the node's SYN was not tracked with its port: " + hex(node_out) +
                              snat_maps.dump());

    const Bytes moved_syn = n.from_node(kOutside, n.nat_port, kHttps, kTcpSyn);
    SKIFF_TRY(
        one_run(n.to_uplink, moved_syn, n.uplink_if(), TC_ACT_OK, &node_out, "set-up: the node's SYN on A's tuple"));
    auto moved_entry = snat_maps.get(snat::egress_key(kNode, kOutside, n.nat_port, kHttps, kTcp));
    if (node_out.size() < kEthHlen + 40 || !moved_entry || ntohs(moved_entry->port) == n.nat_port ||
        frame_sport(node_out) != ntohs(moved_entry->port))
        return Error::invalid("set-up: the node's SYN on A's tuple was not moved: " + hex(node_out) + snat_maps.dump());
    n.moved_port = frame_sport(node_out);

    std::vector<Path> paths;
    const Baselines base = add_baselines(n, paths);
    add_from_pod_paths(n, base, paths);
    add_from_uplink_paths(n, base, paths);
    add_to_uplink_paths(n, base, paths);
    add_floor_paths(n, base, paths);
    add_single_run_copies(paths, base.single);

    SKIFF_TRY(check_paths(paths, metrics));
    if (!snat_maps.get(snat::egress_key(kPodA, kOutside, kSportMasq, kHttps, kTcp)))
        return Error::invalid("masquerade entry gone: " + snat_maps.dump());

    SKIFF_TRY(time_paths(paths, opt, metrics));
    result = result_json(paths, opt);
    return ok();
}

}  // namespace

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

// skiff-prog-bench: per-packet cost of each skiff BPF program path, as the
// kernel times it in BPF_PROG_TEST_RUN (duration = average ns per run). In a
// private netns with the BPF tests' veths/underlay (tests/bpf/*_env.h) and its
// own pin dir /sys/fs/bpf/skiff-progbench-<pid> (removed at exit), it loads
// from_pod/from_uplink, fills the maps like a node (local + remote PodCIDR, a
// ClusterIP, masquerade) and times crafted TCP packets (64-byte payload) on
// each path, plus an empty tc program (the test_run overhead baseline).
// test_run repeats on the SAME skb, so a path that rewrites addresses would
// take another path from its 2nd run: those run once per call (--repeat calls),
// routed paths (TTL 255, -1 per run) 200 runs per call. Every call's verdict,
// one output frame byte for byte and the metrics counters are checked.
#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "snat_env.h"  // remote_env.h, service_env.h, bpf_test_env.h, frames.h

namespace {

using namespace skiff;
using namespace skiff::bpftest;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

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
const Ipv4 kOtherNode = kNodeNeighIp;   // 192.168.1.12
const Ipv4 kPodA(0x0af4010a);           // 10.244.1.10: the sender, skt-rpd-h (forwarding on)
const Ipv4 kPodB(0x0af40114);           // 10.244.1.20: local destination / backend, skt-dst-h
const Ipv4 kRemotePod(0x0af40505);      // 10.244.5.5: behind 192.168.1.12
const Ipv4 kVip(0x0a60000a);            // 10.96.0.10
const Ipv4 kOutside = kSnatOutside;     // 192.168.1.200, neighbour known
constexpr uint16_t kVport = 80, kBport = 8080, kHttps = 443, kIperf = 5201;
constexpr uint32_t kBackendId = 1;
constexpr uint16_t kRevNat = 7;
constexpr uint16_t kNatMin = 61000, kNatMax = 61999;

// Source ports of A, one flow per path.
constexpr uint16_t kSportLocal = 40000, kSportRemote = 40001, kSportEst = 40002, kSportSyn = 40003,
                   kSportMasq = 40004, kSportFromRemote = 40005;

constexpr uint8_t kRoutedTtl = 255;
constexpr uint32_t kRoutedBatch = 200;  // runs per call while TTL 255 stays > 1
constexpr size_t kPayload = 64;

const char* verdict_name(uint32_t v) {
    switch (v) {
        case TC_ACT_OK: return "TC_ACT_OK";
        case TC_ACT_SHOT: return "TC_ACT_SHOT";
        case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
        default: return "TC_ACT_?";
    }
}

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

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------

struct Call {
    int err = 0;            // 0 or -errno
    uint32_t retval = 0;    // the last run's TC action
    uint32_t duration = 0;  // average ns per run, as the kernel reports it
};

// repeat runs of prog on frame as received on ifindex; out (if given) gets
// the packet after the last run.
Call test_run_repeat(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat, Bytes* out = nullptr) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ifindex);
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    if (out) {
        out->assign(frame.size() + 256, 0);
        o.data_out = out->data();
        o.data_size_out = static_cast<uint32_t>(out->size());
    }
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
    o.repeat = repeat;
    Call c;
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) {
        c.err = -errno;
        return c;
    }
    c.retval = o.retval;
    c.duration = o.duration;
    if (out) out->resize(o.data_size_out);
    return c;
}

// A SCHED_CLS program of two instructions: r0 = TC_ACT_OK; exit.
Result<UniqueFd> load_empty_prog() {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, TC_ACT_OK},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "skiff_empty", "GPL", insns, 2, nullptr);
    if (fd < 0) return Error::os(-fd, "load the empty tc program");
    return UniqueFd(fd);
}

// ---------------------------------------------------------------------------
// Pin dir: /sys/fs/bpf/skiff-progbench-<pid>, removed by the destructor
// ---------------------------------------------------------------------------

const std::string kPinPrefix = "skiff-progbench-";

// Pin dirs of earlier runs that died without cleaning up (SIGKILL).
void sweep_dead_pin_dirs() {
    DIR* d = ::opendir("/sys/fs/bpf");
    if (!d) return;
    std::vector<std::string> dead;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.rfind(kPinPrefix, 0) != 0) continue;
        char* end = nullptr;
        long pid = std::strtol(n.c_str() + kPinPrefix.size(), &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) dead.push_back("/sys/fs/bpf/" + n);
    }
    ::closedir(d);
    for (const auto& p : dead) {
        std::string err = remove_pin_dir(p);
        std::fprintf(stderr, "prog-bench: removed stale %s%s%s\n", p.c_str(), err.empty() ? "" : ": ", err.c_str());
    }
}

class BenchPins {
public:
    BenchPins() : path_("/sys/fs/bpf/" + kPinPrefix + std::to_string(::getpid())) {}
    BenchPins(const BenchPins&) = delete;
    BenchPins& operator=(const BenchPins&) = delete;
    ~BenchPins() {
        if (!created_) return;
        std::string err = remove_pin_dir(path_);
        if (!err.empty()) std::fprintf(stderr, "prog-bench: cleanup: %s\n", err.c_str());
    }
    Status create() {
        if (std::string err = remove_pin_dir(path_); !err.empty()) return Error{EIO, err};
        created_ = true;
        return bpf::ensure_pin_dir(path_);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    bool created_ = false;
};

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

struct Reason {
    uint32_t reason, dir;
};

struct Path {
    std::string name, program, description;
    int prog_fd = -1;
    int ifindex = 0;
    Bytes frame;
    uint32_t batch = 1;     // runs per BPF_PROG_TEST_RUN call
    uint32_t verdict = TC_ACT_REDIRECT;
    std::vector<Reason> reasons;  // counters each run moves by one (none: not checked)
    std::function<Bytes(uint32_t runs)> expected;  // the frame after `runs` runs in one call
    std::function<Status()> after_call;            // outside the timed region
    std::string baseline;  // the baseline entry with the same runs per call
    std::vector<double> ns;  // per trial
};

std::string describe_counters(bpf::MetricsMap& m) {
    auto c = read_counters(m);
    return c.ok() ? describe(c.value()) : "(metrics: " + c.error().message + ")";
}

std::string describe_ct(const ServiceMaps& svc) { return svc.ct_dump(); }

// ServiceMaps (service_env.h) plus deleting one conntrack entry.
class BenchServiceMaps : public ServiceMaps {
public:
    Status delete_ct(const skiff_ct_key& k) { return map_del(ct_.get(), k, "ct: delete"); }
};

// One check call: runs frames through the path and compares the output.
Status check_path(const Path& p, uint32_t runs, bpf::MetricsMap& metrics) {
    Bytes out;
    Call c = test_run_repeat(p.prog_fd, p.frame, p.ifindex, runs, &out);
    if (c.err) return Error::os(-c.err, p.name + ": BPF_PROG_TEST_RUN");
    if (c.retval != p.verdict)
        return Error::invalid(p.name + ": verdict " + std::to_string(c.retval) + " (" + verdict_name(c.retval) +
                              "), expected " + verdict_name(p.verdict) + " after " + std::to_string(runs) +
                              " run(s); counters: " + describe_counters(metrics));
    if (p.expected) {
        Bytes want = p.expected(runs);
        if (out != want)
            return Error::invalid(p.name + ": output frame after " + std::to_string(runs) + " run(s)\n  got  " +
                                  hex(out) + "\n  want " + hex(want));
    }
    if (p.after_call) SKIFF_TRY(p.after_call());
    return ok();
}

// runs runs of p (calls of p.batch runs): average ns per run.
Result<double> measure(Path& p, uint64_t runs, bpf::MetricsMap& metrics) {
    const uint64_t calls = std::max<uint64_t>(1, runs / p.batch);
    runs = calls * p.batch;
    Counters before;
    if (!p.reasons.empty()) {
        SKIFF_ASSIGN_OR_RETURN(before, read_counters(metrics));
    }
    uint64_t total_ns = 0;
    for (uint64_t i = 0; i < calls; ++i) {
        if (g_stop) return Error{EINTR, "interrupted"};
        Call c = test_run_repeat(p.prog_fd, p.frame, p.ifindex, p.batch);
        if (c.err == -EINTR && g_stop) return Error{EINTR, "interrupted"};
        if (c.err) return Error::os(-c.err, p.name + ": BPF_PROG_TEST_RUN");
        if (c.retval != p.verdict)
            return Error::invalid(p.name + ": call " + std::to_string(i) + " returned " + verdict_name(c.retval) +
                                  ", expected " + verdict_name(p.verdict) + "; counters: " +
                                  describe_counters(metrics));
        total_ns += uint64_t{c.duration} * p.batch;
        if (p.after_call) SKIFF_TRY(p.after_call());
    }
    if (!p.reasons.empty()) {
        // Each expected reason moved by one per run, and no other verdict,
        // translation or drop counter moved. Counters that are neither
        // (e.g. entry accounting) may move along and are not checked.
        SKIFF_ASSIGN_OR_RETURN(Counters after, read_counters(metrics));
        auto delta = [&](const std::pair<uint32_t, uint32_t>& k) {
            auto a = after.find(k);
            auto b = before.find(k);
            return (a == after.end() ? 0 : a->second.packets) - (b == before.end() ? 0 : b->second.packets);
        };
        for (const auto& [k, v] : after) {
            const bool checked = k.first <= SKIFF_SNAT_ICMP_ERROR || k.first >= SKIFF_DROP_BASE;
            const bool expected = std::any_of(p.reasons.begin(), p.reasons.end(), [&](const Reason& r) {
                return r.reason == k.first && r.dir == k.second;
            });
            const uint64_t d = delta(k);
            if (expected ? d != runs : checked && d != 0)
                return Error::invalid(p.name + ": counter " + std::string(bpf::reason_name(k.first)) + "/" +
                                      std::string(bpf::dir_name(k.second)) + " moved by " + std::to_string(d) +
                                      " in " + std::to_string(runs) + " runs, expected " +
                                      std::to_string(expected ? runs : 0) + "; counters: " + describe(after));
        }
        for (const auto& r : p.reasons)
            if (after.find({r.reason, r.dir}) == after.end())
                return Error::invalid(p.name + ": counter " + std::string(bpf::reason_name(r.reason)) +
                                      " did not move; counters: " + describe(after));
    }
    return static_cast<double>(total_ns) / static_cast<double>(runs);
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

struct Options {
    uint64_t repeat = 1000000;
    int trials = 5;
    int cpu = -1;
};

void usage(std::FILE* f) {
    std::fprintf(f,
                 "usage: skiff-prog-bench [--repeat N] [--quick] [--trials T] [--cpu C]\n"
                 "  --repeat N   runs per path per trial (default 1000000)\n"
                 "  --quick      --repeat 200000\n"
                 "  --trials T   trials, paths interleaved within each (default 5)\n"
                 "  --cpu C      pin to CPU C first\n"
                 "Prints JSON to stdout; needs CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN.\n");
}

std::optional<Options> parse_args(int argc, char** argv) {
    Options o;
    auto num = [&](int& i, const char* name, long long lo, long long hi) -> std::optional<long long> {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "prog-bench: %s needs a value\n", name);
            return std::nullopt;
        }
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(argv[++i], &end, 10);
        if (errno || *end || v < lo || v > hi) {
            std::fprintf(stderr, "prog-bench: %s: %s is not a number in [%lld, %lld]\n", name, argv[i], lo, hi);
            return std::nullopt;
        }
        return v;
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--repeat") {
            auto v = num(i, "--repeat", 1, 1000000000);
            if (!v) return std::nullopt;
            o.repeat = static_cast<uint64_t>(*v);
        } else if (a == "--quick") {
            o.repeat = 200000;
        } else if (a == "--trials") {
            auto v = num(i, "--trials", 1, 1000);
            if (!v) return std::nullopt;
            o.trials = static_cast<int>(*v);
        } else if (a == "--cpu") {
            auto v = num(i, "--cpu", 0, CPU_SETSIZE - 1);
            if (!v) return std::nullopt;
            o.cpu = static_cast<int>(*v);
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "prog-bench: unknown argument %s\n", a.c_str());
            usage(stderr);
            return std::nullopt;
        }
    }
    return o;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round1(double v) { return std::round(v * 10) / 10; }

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

Status run(const Options& opt, const BenchPins& pins, nlohmann::ordered_json& result) {
    // The private netns and its devices (bpf_test_env.h, remote_env.h,
    // snat_env.h): nothing is created unless the unshare worked.
    const auto& net = test_net();
    if (!net.ok()) return net.error().wrap("private netns");
    SKIFF_TRY(detail::check_private_netns(*net));
    const auto& rn_r = remote_net();
    if (!rn_r.ok()) return rn_r.error().wrap("underlay");
    SKIFF_TRY(snat_net());
    const RemoteNet& rn = *rn_r;
    const TestVeth& veth_a = rn.pod;       // forwarding on: FIB lookups from A work
    const TestVeth& veth_b = net->dst;
    const TestVeth& uplink = rn.uplink;

    // Programs and maps, as on a node: one pin dir shared by both programs.
    SKIFF_ASSIGN_OR_RETURN(UniqueFd from_pod, bpf::pinned_program(bpf::Program::FromPod, pins.path()));
    SKIFF_ASSIGN_OR_RETURN(UniqueFd from_uplink, bpf::pinned_program(bpf::Program::FromUplink, pins.path()));
    SKIFF_ASSIGN_OR_RETURN(UniqueFd empty, load_empty_prog());
    SKIFF_ASSIGN_OR_RETURN(auto endpoints, bpf::EndpointMap::open(pins.path()));
    SKIFF_ASSIGN_OR_RETURN(auto nodes, bpf::NodeMap::open(pins.path()));
    SKIFF_ASSIGN_OR_RETURN(auto metrics, bpf::MetricsMap::open(pins.path()));
    BenchServiceMaps svc;
    SKIFF_TRY(svc.open(pins.path()));
    SnatMaps snat_maps;
    SKIFF_TRY(snat_maps.open(pins.path()));

    SKIFF_TRY(endpoints.upsert(kPodA, endpoint(veth_a)));
    SKIFF_TRY(endpoints.upsert(kPodB, endpoint(veth_b)));
    SKIFF_TRY(nodes.upsert(kLocalCidr, node(kNode, SKIFF_NODE_F_LOCAL)));
    SKIFF_TRY(nodes.upsert(kRemoteCidr, node(kOtherNode)));
    SKIFF_TRY(svc.set_backend(kBackendId, kPodB, kBport, kTcp));
    SKIFF_TRY(svc.set_service(kVip, kVport, kTcp, {kBackendId}, kRevNat));
    SKIFF_TRY(snat_maps.add_nomasq(kClusterCidr));
    SKIFF_TRY(snat_maps.add_nomasq(Ipv4Prefix(kNode, 32)));
    SKIFF_TRY(snat_maps.add_nomasq(Ipv4Prefix(kOtherNode, 32)));
    SKIFF_TRY(snat_maps.set_config(snat::config(SKIFF_CFG_F_MASQUERADE, kNatMin, kNatMax)));

    const int pod_a_if = veth_a.host.ifindex, pod_b_if = veth_b.host.ifindex, uplink_if = uplink.host.ifindex;
    constexpr uint8_t kData = kTcpPsh | kTcpAck;

    // A sends (pod MAC -> host veth MAC), B sends, the wire sends.
    auto from_a = [&](Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags, uint8_t ttl = 64) {
        return tcp_frame(veth_a.host.mac, veth_a.pod.mac, kPodA, dst, sport, dport, flags, ttl);
    };
    auto from_b = [&](Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags) {
        return tcp_frame(veth_b.host.mac, veth_b.pod.mac, kPodB, dst, sport, dport, flags, 64);
    };
    auto from_wire = [&](const MacAddr& src_mac, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport,
                         uint8_t flags, uint8_t ttl = 60) {
        return tcp_frame(uplink.host.mac, src_mac, src, dst, sport, dport, flags, ttl);
    };
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
    // (SYN, SYN-ACK through the reverse path) and a masqueraded flow.
    SKIFF_TRY(one_run(from_pod.get(), from_a(kVip, kSportEst, kVport, kTcpSyn), pod_a_if, TC_ACT_REDIRECT, nullptr,
                      "set-up: SYN to the ClusterIP"));
    SKIFF_TRY(one_run(from_pod.get(), from_b(kPodA, kBport, kSportEst, kTcpSyn | kTcpAck), pod_b_if,
                      TC_ACT_REDIRECT, nullptr, "set-up: SYN-ACK from the backend"));
    {
        auto fwd = svc.ct(ct_key(kPodA, kVip, kSportEst, kVport, kTcp, SKIFF_CT_FORWARD));
        if (!fwd || !(fwd->flags & SKIFF_CT_F_REPLIED))
            return Error::invalid("set-up: no replied conntrack entry: " + describe_ct(svc));
    }
    Bytes masq_out;
    SKIFF_TRY(one_run(from_pod.get(), from_a(kOutside, kSportMasq, kHttps, kTcpSyn), pod_a_if, TC_ACT_REDIRECT,
                      &masq_out, "set-up: SYN to the outside"));
    if (masq_out.size() < kEthHlen + 40 || frame_saddr(masq_out) != kNode)
        return Error::invalid("set-up: the SYN to the outside was not masqueraded: " + hex(masq_out));
    const uint16_t nat_port = frame_sport(masq_out);

    std::vector<Path> paths;
    auto add = [&](Path p) { paths.push_back(std::move(p)); };
    const MacAddr& upl_mac = uplink.host.mac;

    // g. baselines: the same frame as a., the empty program.
    {
        Path p;
        p.name = "baseline_empty_batch" + std::to_string(kRoutedBatch);
        p.program = "empty";
        p.description = "tc program 'return TC_ACT_OK': test_run overhead, " + std::to_string(kRoutedBatch) +
                        " runs per call";
        p.prog_fd = empty.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kPodB, kSportLocal, kIperf, kData, kRoutedTtl);
        p.batch = kRoutedBatch;
        p.verdict = TC_ACT_OK;
        const Bytes in = p.frame;
        p.expected = [in](uint32_t) { return in; };
        add(p);
        p.name = "baseline_empty_batch1";
        p.description = "tc program 'return TC_ACT_OK': test_run overhead, 1 run per call";
        p.batch = 1;
        add(std::move(p));
    }
    const std::string base_routed = paths[0].name, base_single = paths[1].name;

    // a. same node: redirect_peer into B.
    {
        Path p;
        p.name = "pod_to_pod_same_node";
        p.program = "from_pod";
        p.description = "A -> B on this node, TCP data: anti-spoofing, service and masquerade checks, "
                        "endpoint lookup, bpf_redirect_peer";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kPodB, kSportLocal, kIperf, kData, kRoutedTtl);
        p.batch = kRoutedBatch;
        p.reasons = {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_b](uint32_t runs) {
            return rewritten(in, veth_b.pod.mac, veth_b.host.mac, static_cast<uint8_t>(runs), kPodA, kSportLocal,
                             kPodB, kIperf);
        };
        p.baseline = base_routed;
        add(std::move(p));
    }
    // b. another node: node map (LPM), bpf_fib_lookup, bpf_redirect to the uplink.
    {
        Path p;
        p.name = "pod_to_pod_other_node";
        p.program = "from_pod";
        p.description = "A -> 10.244.5.5 behind 192.168.1.12, TCP data: node map, bpf_fib_lookup "
                        "(neighbour known), bpf_redirect out of the uplink";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kRemotePod, kSportRemote, kIperf, kData, kRoutedTtl);
        p.batch = kRoutedBatch;
        p.reasons = {{SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, upl_mac](uint32_t runs) {
            return rewritten(in, kNodeNeighMac, upl_mac, static_cast<uint8_t>(runs), kPodA, kSportRemote,
                             kRemotePod, kIperf);
        };
        p.baseline = base_routed;
        add(std::move(p));
    }
    // c. ClusterIP, established: conntrack hit, DNAT, redirect_peer.
    {
        Path p;
        p.name = "clusterip_established";
        p.program = "from_pod";
        p.description = "A -> 10.96.0.10:80, TCP data of a replied connection: conntrack hit, DNAT to "
                        "B:8080, bpf_redirect_peer";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kVip, kSportEst, kVport, kData);
        p.reasons = {{SKIFF_SVC_ESTABLISHED, SKIFF_DIR_EGRESS}, {SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_b](uint32_t) {
            return rewritten(in, veth_b.pod.mac, veth_b.host.mac, 1, kPodA, kSportEst, kPodB, kBport);
        };
        p.baseline = base_single;
        add(std::move(p));
    }
    // c'. its replies: reverse DNAT, redirect_peer back into A.
    {
        Path p;
        p.name = "clusterip_reply";
        p.program = "from_pod";
        p.description = "B:8080 -> A, TCP data answering c.: conntrack REPLY hit, source back to "
                        "10.96.0.10:80, bpf_redirect_peer";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_b_if;
        p.frame = from_b(kPodA, kBport, kSportEst, kData);
        p.reasons = {{SKIFF_SVC_REPLY, SKIFF_DIR_EGRESS}, {SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_a](uint32_t) {
            return rewritten(in, veth_a.pod.mac, veth_a.host.mac, 1, kVip, kVport, kPodA, kSportEst);
        };
        p.baseline = base_single;
        add(std::move(p));
    }
    // d. ClusterIP, first packet: backend pick, two conntrack inserts. The
    // entries are deleted after every call (outside the timed region), so
    // every run creates them.
    {
        Path p;
        p.name = "clusterip_syn_new";
        p.program = "from_pod";
        p.description = "A -> 10.96.0.10:80, SYN (20 bytes of options, no payload) of a new connection: "
                        "backend pick, FORWARD+REPLY conntrack inserts, DNAT, bpf_redirect_peer; both "
                        "entries deleted after each call, untimed";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kVip, kSportSyn, kVport, kTcpSyn);
        p.reasons = {{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, {SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_b](uint32_t) {
            return rewritten(in, veth_b.pod.mac, veth_b.host.mac, 1, kPodA, kSportSyn, kPodB, kBport);
        };
        const skiff_ct_key fkey = ct_key(kPodA, kVip, kSportSyn, kVport, kTcp, SKIFF_CT_FORWARD);
        const skiff_ct_key rkey = ct_key(kPodB, kPodA, kBport, kSportSyn, kTcp, SKIFF_CT_REPLY);
        BenchServiceMaps* maps = &svc;
        p.after_call = [maps, fkey, rkey]() -> Status {
            // Both must exist: proves the run created them.
            SKIFF_TRY(maps->delete_ct(fkey));
            return maps->delete_ct(rkey);
        };
        p.baseline = base_single;
        add(std::move(p));
    }
    // e. masquerade, established flow.
    {
        Path p;
        p.name = "masquerade_established";
        p.program = "from_pod";
        p.description = "A -> 192.168.1.200:443, TCP data of a masqueraded flow: service misses, "
                        "no-masquerade LPM miss, bpf_fib_lookup, snat EGRESS hit, source -> node:port, "
                        "bpf_redirect out of the uplink";
        p.prog_fd = from_pod.get();
        p.ifindex = pod_a_if;
        p.frame = from_a(kOutside, kSportMasq, kHttps, kData);
        p.reasons = {{SKIFF_SNAT_EGRESS_XLATE, SKIFF_DIR_EGRESS}, {SKIFF_FWD_FIB, SKIFF_DIR_EGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, upl_mac, nat_port](uint32_t) {
            return rewritten(in, kSnatOutsideMac, upl_mac, 1, kNode, nat_port, kOutside, kHttps);
        };
        p.baseline = base_single;
        add(std::move(p));
    }
    // f. from the uplink: the reply of e., and a remote node's pod to B.
    {
        Path p;
        p.name = "uplink_masquerade_reply";
        p.program = "from_uplink";
        p.description = "192.168.1.200:443 -> node:NAT port, TCP data answering e.: snat INGRESS hit, "
                        "destination -> A, bpf_redirect_peer";
        p.prog_fd = from_uplink.get();
        p.ifindex = uplink_if;
        p.frame = from_wire(kSnatOutsideMac, kOutside, kNode, kHttps, nat_port, kData);
        p.reasons = {{SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS}, {SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_a](uint32_t) {
            return rewritten(in, veth_a.pod.mac, veth_a.host.mac, 1, kOutside, kHttps, kPodA, kSportMasq);
        };
        p.baseline = base_single;
        add(std::move(p));
    }
    {
        Path p;
        p.name = "uplink_remote_pod_to_local_pod";
        p.program = "from_uplink";
        p.description = "10.244.5.5 (from 192.168.1.12) -> B, TCP data: conntrack, snat and service "
                        "misses, endpoint lookup, bpf_redirect_peer";
        p.prog_fd = from_uplink.get();
        p.ifindex = uplink_if;
        p.frame = from_wire(kNodeNeighMac, kRemotePod, kPodB, kSportFromRemote, kIperf, kData, kRoutedTtl);
        p.batch = kRoutedBatch;
        p.reasons = {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS}};
        const Bytes in = p.frame;
        p.expected = [in, &veth_b](uint32_t runs) {
            return rewritten(in, veth_b.pod.mac, veth_b.host.mac, static_cast<uint8_t>(runs), kRemotePod,
                             kSportFromRemote, kPodB, kIperf);
        };
        p.baseline = base_routed;
        add(std::move(p));
    }

    // The routed paths once per call too, comparable with the translated
    // ones (same per-call overhead, no hot loop over one packet).
    for (size_t i = 0; i < paths.size(); ++i) {
        if (paths[i].batch == 1 || paths[i].program == "empty") continue;
        Path p = paths[i];
        p.name += "_1run";
        p.description += " (1 run per call)";
        p.batch = 1;
        p.baseline = base_single;
        paths.insert(paths.begin() + static_cast<std::ptrdiff_t>(++i), std::move(p));
    }

    // Each path once and, batched ones, for a whole call: verdict and frame.
    for (const auto& p : paths) {
        SKIFF_TRY(check_path(p, 1, metrics));
        if (p.batch > 1) SKIFF_TRY(check_path(p, p.batch, metrics));
    }
    if (!snat_maps.get(snat::egress_key(kPodA, kOutside, kSportMasq, kHttps, kTcp)))
        return Error::invalid("masquerade entry gone: " + snat_maps.dump());

    // Warm-up, then the trials: every path in each, in turn.
    for (auto& p : paths) SKIFF_TRY(measure(p, std::min<uint64_t>(opt.repeat, 20000), metrics));
    for (int t = 0; t < opt.trials; ++t) {
        for (auto& p : paths) {
            SKIFF_ASSIGN_OR_RETURN(double ns, measure(p, opt.repeat, metrics));
            p.ns.push_back(ns);
        }
        std::string line;
        for (const auto& p : paths) {
            char buf[96];
            std::snprintf(buf, sizeof(buf), " %s=%.1f", p.name.c_str(), p.ns.back());
            line += buf;
        }
        std::fprintf(stderr, "prog-bench: trial %d/%d ns/run:%s\n", t + 1, opt.trials, line.c_str());
    }

    utsname u{};
    ::uname(&u);
    result = nlohmann::ordered_json::object();
    result["repeat"] = opt.repeat;
    result["trials"] = opt.trials;
    result["kernel"] = std::string(u.release);
    result["cpu"] = opt.cpu >= 0 ? nlohmann::ordered_json(opt.cpu) : nlohmann::ordered_json(nullptr);
    result["method"] =
        "BPF_PROG_TEST_RUN duration (kernel-timed average ns per run, incl. its loop overhead: see the "
        "baseline with the same runs_per_call); each trial = repeat runs per path; paths that rewrite "
        "addresses run once per call (a 2nd run on the same skb would take another path)";
    auto find_path = [&](const std::string& name) -> const Path* {
        for (const auto& q : paths)
            if (q.name == name) return &q;
        return nullptr;
    };
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& p : paths) {
        nlohmann::ordered_json j;
        j["name"] = p.name;
        j["program"] = p.program;
        j["verdict"] = verdict_name(p.verdict);
        j["ns_median"] = round1(median(p.ns));
        j["ns_min"] = round1(*std::min_element(p.ns.begin(), p.ns.end()));
        j["ns_max"] = round1(*std::max_element(p.ns.begin(), p.ns.end()));
        j["runs_per_call"] = p.batch;
        j["runs"] = std::max<uint64_t>(1, opt.repeat / p.batch) * p.batch;
        if (const Path* base = p.baseline.empty() ? nullptr : find_path(p.baseline)) {
            // Trials are interleaved: subtract the baseline of the same trial.
            std::vector<double> net;
            for (size_t i = 0; i < p.ns.size(); ++i) net.push_back(p.ns[i] - base->ns[i]);
            j["baseline"] = p.baseline;
            j["ns_over_baseline_median"] = round1(median(net));
        }
        nlohmann::ordered_json reasons = nlohmann::ordered_json::array();
        for (const auto& r : p.reasons)
            reasons.push_back(std::string(bpf::reason_name(r.reason)) + "/" + std::string(bpf::dir_name(r.dir)));
        j["reasons"] = reasons;
        j["description"] = p.description;
        nlohmann::ordered_json trials = nlohmann::ordered_json::array();
        for (double v : p.ns) trials.push_back(round1(v));
        j["ns_trials"] = trials;
        arr.push_back(j);
    }
    result["paths"] = arr;
    return ok();
}

}  // namespace

int main(int argc, char** argv) {
    auto opt = parse_args(argc, argv);
    if (!opt) return 2;

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    if (opt->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt->cpu, &set);
        if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
            std::fprintf(stderr, "prog-bench: pin to CPU %d: %s\n", opt->cpu, std::strerror(errno));
            return 1;
        }
    }

    sweep_dead_pin_dirs();
    nlohmann::ordered_json result;
    Status s = ok();
    {
        BenchPins pins;  // removed when this scope ends, whatever happened
        s = pins.create();
        if (s.ok()) s = run(*opt, pins, result);
    }
    if (!s.ok()) {
        std::fprintf(stderr, "prog-bench: FAILED: %s\n", s.error().message.c_str());
        return 1;
    }
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
}

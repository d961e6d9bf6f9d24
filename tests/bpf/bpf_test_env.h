// Shared harness for the BPF program tests:
//  - a private network namespace for the whole test process (unshare), with
//    veth pairs whose ifindexes BPF_PROG_TEST_RUN accepts as skb->dev;
//  - a unique bpffs pin directory per test, removed again in TearDown;
//  - hand-built Ethernet/IPv4/ICMP/TCP/UDP frames and Internet checksums;
//  - a BPF_PROG_TEST_RUN wrapper and a readable view of skiff_metrics.
#pragma once

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "bpf/maps.h"
#include "bpf/objects.h"
#include "bpf/pins.h"
#include "common/ipv4.h"
#include "common/result.h"
#include "net/netns.h"
#include "net/rtnetlink.h"

namespace skiff::bpftest {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------
// Private network namespace with test devices
// ---------------------------------------------------------------------------

struct TestLink {
    int ifindex = 0;
    MacAddr mac{};
};

// One veth pair: "host" is the host-side end (what from_pod is attached to
// and what endpoint entries carry), "pod" stands in for the pod's eth0.
struct TestVeth {
    TestLink host;
    TestLink pod;
};

struct TestNet {
    unsigned long root_ns_dev = 0, root_ns_ino = 0;  // the netns we left
    TestVeth src;    // the sending pod
    TestVeth dst;    // a local destination pod
    TestVeth other;  // a third pod (its IP is used for spoofing)
};

namespace detail {

inline Result<std::pair<unsigned long, unsigned long>> current_netns_id() {
    struct stat st {};
    if (::stat("/proc/thread-self/ns/net", &st) != 0) return Error::errno_("stat own netns");
    return std::make_pair(static_cast<unsigned long>(st.st_dev),
                          static_cast<unsigned long>(st.st_ino));
}

inline Result<TestVeth> make_veth(Netlink& nl, const std::string& host, const std::string& pod) {
    VethSpec spec;
    spec.host_name = host;
    spec.peer_name = pod;
    SKIFF_TRY(nl.create_veth(spec));
    SKIFF_ASSIGN_OR_RETURN(LinkInfo h, nl.link(host));
    SKIFF_ASSIGN_OR_RETURN(LinkInfo p, nl.link(pod));
    SKIFF_TRY(nl.set_up(h.ifindex));
    SKIFF_TRY(nl.set_up(p.ifindex));
    TestVeth v;
    v.host = {h.ifindex, h.mac};
    v.pod = {p.ifindex, p.mac};
    return v;
}

inline Result<TestNet> setup_test_net() {
    TestNet net;
    SKIFF_ASSIGN_OR_RETURN(auto root, current_netns_id());
    net.root_ns_dev = root.first;
    net.root_ns_ino = root.second;
    // Everything below happens in a namespace nobody else can see; it goes
    // away with the process. gtest runs tests on this (the main) thread.
    if (::unshare(CLONE_NEWNET) != 0) return Error::errno_("unshare(CLONE_NEWNET)");
    SKIFF_ASSIGN_OR_RETURN(auto now, current_netns_id());
    if (now == root) return Error::invalid("unshare(CLONE_NEWNET) did not change the netns");
    SKIFF_ASSIGN_OR_RETURN(Netlink nl, Netlink::open());
    SKIFF_ASSIGN_OR_RETURN(net.src, make_veth(nl, "skt-src-h", "skt-src-p"));
    SKIFF_ASSIGN_OR_RETURN(net.dst, make_veth(nl, "skt-dst-h", "skt-dst-p"));
    SKIFF_ASSIGN_OR_RETURN(net.other, make_veth(nl, "skt-oth-h", "skt-oth-p"));
    return net;
}

}  // namespace detail

// The process' private netns and its devices, set up on first use. Callers
// must check ok() before doing anything network related, so a failed
// unshare never lets a test touch the namespace the binary was started in.
inline const Result<TestNet>& test_net() {
    static const Result<TestNet> net = detail::setup_test_net();
    return net;
}

// ---------------------------------------------------------------------------
// Pin directories
// ---------------------------------------------------------------------------

inline std::string pin_dir_prefix() {
    return "/sys/fs/bpf/skiff-bpftest-" + std::to_string(::getpid()) + "-";
}

// Unlink every entry of a (flat) pin dir, then the dir. Missing is fine.
// Returns an empty string on success, else what went wrong.
inline std::string remove_pin_dir(const std::string& path) {
    std::string err;
    DIR* d = ::opendir(path.c_str());
    if (!d) {
        if (errno == ENOENT) return {};
        return "opendir " + path + ": " + std::strerror(errno);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names) {
        std::string p = path + "/" + n;
        if (::unlink(p.c_str()) != 0 && errno != ENOENT)
            err += "unlink " + p + ": " + std::strerror(errno) + "; ";
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
        err += "rmdir " + path + ": " + std::strerror(errno) + "; ";
    return err;
}

// Remove whatever pin dirs this process left behind (safety net).
inline void sweep_pin_dirs() {
    const std::string prefix = pin_dir_prefix();
    const std::string base = "/sys/fs/bpf/";
    DIR* d = ::opendir(base.c_str());
    if (!d) return;
    std::vector<std::string> mine;
    while (dirent* e = ::readdir(d)) {
        std::string p = base + e->d_name;
        if (p.rfind(prefix, 0) == 0) mine.push_back(p);
    }
    ::closedir(d);
    for (const auto& p : mine) {
        std::string err = remove_pin_dir(p);
        if (!err.empty()) std::fprintf(stderr, "bpftest: cleanup: %s\n", err.c_str());
    }
}

// A unique pin dir: /sys/fs/bpf/skiff-bpftest-<pid>-<counter>.
class PinDir {
public:
    PinDir() {
        static std::atomic<unsigned> counter{0};
        path_ = pin_dir_prefix() + std::to_string(counter++);
    }
    PinDir(const PinDir&) = delete;
    PinDir& operator=(const PinDir&) = delete;
    ~PinDir() { (void)remove(); }

    const std::string& path() const { return path_; }

    Status create() {
        // A stale dir of an earlier process with the same pid: start clean.
        if (std::string err = remove_pin_dir(path_); !err.empty()) return Error{EIO, err};
        return bpf::ensure_pin_dir(path_);
    }

    // Remove the pinned objects and the dir; "" when all went fine.
    std::string remove() { return remove_pin_dir(path_); }

private:
    std::string path_;
};

// Unshares the netns up front and sweeps leftover pin dirs at the end.
class BpfTestEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        const auto& net = test_net();
        if (!net.ok())
            std::fprintf(stderr, "bpftest: no private netns: %s\n", net.error().message.c_str());
    }
    void TearDown() override { sweep_pin_dirs(); }
};

inline ::testing::Environment* const kBpfTestEnvironment =
    ::testing::AddGlobalTestEnvironment(new BpfTestEnvironment);

// ---------------------------------------------------------------------------
// Checksums (RFC 1071), over big-endian 16-bit words
// ---------------------------------------------------------------------------

inline uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
    if (n & 1) sum += uint32_t{p[n - 1]} << 8;
    return sum;
}

inline uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The checksum to store: ~ of the one's complement sum (field zeroed first).
inline uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t initial = 0) {
    return static_cast<uint16_t>(~csum_fold(csum_add(initial, p, n)));
}

// A header including its checksum field verifies when it sums to 0xffff.
inline bool checksum_verifies(const uint8_t* p, size_t n) {
    return csum_fold(csum_add(0, p, n)) == 0xffff;
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

constexpr size_t kEthHlen = 14;
constexpr uint16_t kEthPIp = 0x0800;
constexpr uint16_t kEthPArp = 0x0806;
constexpr uint16_t kEthPIpv6 = 0x86dd;

// IPv4 header byte offsets.
constexpr size_t kIpTos = 1, kIpTotLen = 2, kIpId = 4, kIpFrag = 6, kIpTtl = 8, kIpProto = 9,
                 kIpCheck = 10, kIpSaddr = 12, kIpDaddr = 16;

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

inline Bytes ethernet(const MacAddr& dst, const MacAddr& src, uint16_t ethertype, const Bytes& payload) {
    Bytes f(kEthHlen);
    std::memcpy(f.data(), dst.data(), 6);
    std::memcpy(f.data() + 6, src.data(), 6);
    put16(f.data() + 12, ethertype);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

struct Ipv4Spec {
    Ipv4 src, dst;
    uint8_t ttl = 64;
    uint8_t tos = 0;
    uint16_t id = 0x1234;
    uint16_t frag_off = 0x4000;  // DF
    uint8_t protocol = IPPROTO_ICMP;
    Bytes options;  // a multiple of 4 bytes, at most 40
    Bytes l4;       // transport header and payload
};

// The IPv4 header (with options) of spec, checksum filled in.
inline Bytes ipv4_header(const Ipv4Spec& s) {
    const size_t hlen = 20 + s.options.size();
    Bytes h(20);
    h[0] = static_cast<uint8_t>(0x40 | (hlen / 4));
    h[kIpTos] = s.tos;
    put16(&h[kIpTotLen], static_cast<uint16_t>(hlen + s.l4.size()));
    put16(&h[kIpId], s.id);
    put16(&h[kIpFrag], s.frag_off);
    h[kIpTtl] = s.ttl;
    h[kIpProto] = s.protocol;
    put32(&h[kIpSaddr], s.src.value());
    put32(&h[kIpDaddr], s.dst.value());
    h.insert(h.end(), s.options.begin(), s.options.end());
    put16(&h[kIpCheck], inet_checksum(h.data(), h.size()));
    return h;
}

inline Bytes ipv4_packet(const Ipv4Spec& s) {
    Bytes p = ipv4_header(s);
    p.insert(p.end(), s.l4.begin(), s.l4.end());
    return p;
}

// Recompute the header checksum of an IPv4 header in place (after edits).
inline void ipv4_fix_checksum(uint8_t* hdr) {
    const size_t hlen = (hdr[0] & 0xf) * 4u;
    put16(hdr + kIpCheck, 0);
    put16(hdr + kIpCheck, inet_checksum(hdr, hlen));
}

inline uint32_t pseudo_header_sum(Ipv4 src, Ipv4 dst, uint8_t proto, size_t len) {
    uint8_t ph[12] = {};
    put32(ph, src.value());
    put32(ph + 4, dst.value());
    ph[9] = proto;
    put16(ph + 10, static_cast<uint16_t>(len));
    return csum_add(0, ph, sizeof(ph));
}

inline Bytes icmp_echo(uint16_t ident, uint16_t seq, const Bytes& payload) {
    Bytes m(8);
    m[0] = 8;  // echo request
    put16(&m[4], ident);
    put16(&m[6], seq);
    m.insert(m.end(), payload.begin(), payload.end());
    put16(&m[2], inet_checksum(m.data(), m.size()));
    return m;
}

inline Bytes udp(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, const Bytes& payload) {
    Bytes u(8);
    put16(&u[0], sport);
    put16(&u[2], dport);
    put16(&u[4], static_cast<uint16_t>(8 + payload.size()));
    u.insert(u.end(), payload.begin(), payload.end());
    uint16_t c = inet_checksum(u.data(), u.size(), pseudo_header_sum(src, dst, IPPROTO_UDP, u.size()));
    put16(&u[6], c == 0 ? 0xffff : c);
    return u;
}

inline Bytes tcp(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
                 const Bytes& payload) {
    Bytes t(20);
    put16(&t[0], sport);
    put16(&t[2], dport);
    put32(&t[4], seq);
    t[12] = 5 << 4;  // data offset
    t[13] = flags;
    put16(&t[14], 64240);  // window
    t.insert(t.end(), payload.begin(), payload.end());
    put16(&t[16], inet_checksum(t.data(), t.size(), pseudo_header_sum(src, dst, IPPROTO_TCP, t.size())));
    return t;
}

inline Bytes pattern(size_t n, uint8_t seed = 0) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
    return b;
}

inline std::string hex(const uint8_t* p, size_t n) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof(buf), "%02x", p[i]);
        s += buf;
    }
    return s;
}
inline std::string hex(const Bytes& b) { return hex(b.data(), b.size()); }
inline std::string hex(const MacAddr& m) { return hex(m.data(), m.size()); }

// ---------------------------------------------------------------------------
// Running a program
// ---------------------------------------------------------------------------

struct RunResult {
    int err = 0;          // 0, or the negative errno of BPF_PROG_TEST_RUN
    uint32_t retval = 0;  // the program's return value (TC action)
    Bytes data;           // the packet after the program
    __sk_buff ctx{};
};

// BPF_PROG_TEST_RUN of a SCHED_CLS program on frame, as if received on
// ifindex (which must exist in this netns; 0/1 mean loopback).
inline RunResult test_run(int prog_fd, const Bytes& frame, int ifindex) {
    RunResult r;
    r.data.assign(frame.size() + 256, 0);  // room if a program ever grows it
    __sk_buff ctx_in{};
    ctx_in.ifindex = static_cast<uint32_t>(ifindex);
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.empty() ? nullptr : frame.data();
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

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

struct Count {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool operator==(const Count&) const = default;
};

using Counters = std::map<std::pair<uint32_t, uint32_t>, Count>;  // {reason, dir} -> count

inline Result<Counters> read_counters(bpf::MetricsMap& m) {
    SKIFF_ASSIGN_OR_RETURN(auto rows, m.read());
    Counters c;
    for (const auto& r : rows) c[{r.reason, r.dir}] = Count{r.packets, r.bytes};
    return c;
}

inline std::string describe(const Counters& c) {
    if (c.empty()) return "(no counters)";
    std::string s;
    for (const auto& [k, v] : c) {
        if (!s.empty()) s += ", ";
        s += std::string(bpf::reason_name(k.first)) + "(" + std::to_string(k.first) + ")/" +
             std::string(bpf::dir_name(k.second)) + ": " + std::to_string(v.packets) + " pkts " +
             std::to_string(v.bytes) + " bytes";
    }
    return s;
}

}  // namespace skiff::bpftest
